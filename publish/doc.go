// Package publish serves the signed STARTTLS policy list and installs it on
// MTA hosts.
//
// The server side keeps every signed list in an Archive (one directory per
// serial, written atomically, never changed) and serves it with NewHandler
// or as static files written by Export:
//
//	/policy-list.json          the current list (canonical JSON, see listgen)
//	/policy-list.json.sig      its signature (base64, see listgen.SignBlob)
//	/policy-list.json.sshsig   its OpenSSH signature (ssh-keygen -Y verify)
//	/v/SERIAL/policy-list.json every published list, with .sig and .sshsig
//	/pubkey.pem                the public key, PEM (then the next key, if announced)
//	/allowed_signers           the same key(s) for ssh-keygen -Y verify
//	/postfix-tls-policy        the current list as a Postfix policy table
//	/exim-tls-policy           the current list as an Exim lsearch file
//
// Nothing served needs to be trusted: the client on the MTA host, Fetch,
// pins the public key (or a few: the current and the next signing key,
// FetchOptions.PublicKeys) and verifies the signature over the exact bytes it
// downloaded, refuses a serial lower than the one installed (rollback) and
// withdraws enforcement when the list it has expired, or was signed by a
// key no longer pinned and no list by a pinned key can be had. The list is
// downloaded into a temporary file in the state directory, at most MaxSize
// bytes, so memory follows the list's size and not what a server sends, and
// it is parsed only after its signature verifies; a list with serial 0, an
// expiry not after its timestamp or a validity over MaxValidity is refused.
// Only bounded, well-formed ETags and Last-Modified values are kept, and
// server text is cleaned of control characters and cut short before it is
// shown.
//
// The state directory must belong to the running user and not be writable
// by group or others. It holds state.json (serial, validators, the
// installed files; read at most 1 MiB) and, kept apart, expiry.json (the
// installed list's identity and expiry, taken from the verified list only),
// so that an expired list is withdrawn even when state.json cannot be read.
// Temporary files left by an interrupted run are removed.
//
// Fetch writes every file through a temporary file, fsync and rename,
// compiles the Postfix map with postmap before it is renamed into place,
// keeps the owner, group and mode an installed file had, and reloads the
// MTA only when a file changed. postmap and the reload command are killed,
// with their children, after FetchOptions.CommandTimeout (default
// DefaultCommandTimeout) or on cancellation. On failure the files installed
// before are left exactly as they were.
//
// publish imports listgen only: the client stays small on MTA hosts.
package publish
