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
// key no longer pinned and no list by a pinned key can be had. It writes
// every file
// through a temporary file, fsync and rename, compiles the Postfix map with
// postmap before it is renamed into place, and reloads the MTA only when a
// file changed. On failure the files installed before are left exactly as
// they were.
//
// publish imports listgen only: the client stays small on MTA hosts.
package publish
