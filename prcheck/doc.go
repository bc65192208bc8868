// Package prcheck holds the rules of the pull-request door: given the list
// file policy-list.json before and after a pull request, it says what the
// pull request changes, whether each added or changed domain passes the
// validator's full check, whether its owner proved control of it, and
// renders the one comment that answers the pull request.
//
// It knows nothing of GitHub's API (package prdoor reads pull requests and
// writes comments and statuses) and takes the validator and the DNS through
// small interfaces, so the rules are tested without a network.
//
// # What a pull request must show
//
//   - The head list parses and lints clean (listgen.LintBytesWith, with
//     Options.AllowTestTLD for labs), is valid UTF-8 and at most
//     Options.MaxListSize bytes.
//   - At most Options.MaxChecked domains are added or changed, so that one
//     pull request cannot make the checker dial without bound.
//   - Every added or changed domain passes validate's full check, and every
//     MX host the check found matches one of the domain's MX patterns in the
//     head list (code pr.mx_not_covered otherwise).
//   - Every added, changed or removed domain has a TXT record at
//     _starttls-preload.<domain> whose value is the pull request's URL,
//     <repository html_url>/pull/N (the Public Suffix List's _psl proof).
//     A removal may instead carry the maintainers' label
//     (Options.RemovalLabel, default "removal-approved").
//
// The verdict is success only when all of that holds; a pull request that
// does not change the list's policies has nothing to check and succeeds.
//
// # Proof codes
//
//	proof.ok             a TXT value is this pull request's URL
//	proof.label          a removal approved by the maintainers' label
//	proof.missing        no TXT record at the name
//	proof.other_pr       the record names another pull request
//	proof.not_changed    the record names a pull request that does not change the domain
//	proof.mismatch       TXT values, none of them a pull request's URL
//	proof.lookup_failed  the DNS look-up failed (try again)
//
// # Refusal codes
//
//	list.too_large        the head list is larger than Options.MaxListSize
//	list.not_utf8         the head list is not valid UTF-8
//	list.missing          the pull request deletes policy-list.json
//	list.too_many_changes more than Options.MaxChecked added or changed domains
//	list.base_unreadable  the base list does not parse (a maintainer must fix it first)
//
// Lint problems of the head list are reported with listgen's codes.
package prcheck
