package publish

import "errors"

// Sentinel errors. Match them with errors.Is; the text may gain detail.
var (
	ErrNotFound       = errors.New("publish: no such list")
	ErrBadSnapshot    = errors.New("publish: incomplete snapshot")
	ErrSerialNotNewer = errors.New("publish: serial is not newer than the current one")
	ErrExportConflict = errors.New("publish: export would change a published file")

	ErrLocked       = errors.New("publish: another fetch is running")
	ErrStateDir     = errors.New("publish: state directory is not usable")
	ErrDownload     = errors.New("publish: download failed")
	ErrTooLarge     = errors.New("publish: too large")
	ErrNotAList     = errors.New("publish: server did not return a policy list")
	ErrBadSignature = errors.New("publish: list signature does not verify with the pinned key")
	ErrBadList      = errors.New("publish: signed list does not parse")
	ErrRollback     = errors.New("publish: list is older than the installed one, refusing a rollback")
	ErrSameSerial   = errors.New("publish: list has the installed serial but different content")
	ErrExpired      = errors.New("publish: policy list has expired")
	ErrEmptyList    = errors.New("publish: the list enforces no domain while the installed one does, refusing to install it")
	ErrInstall      = errors.New("publish: installing the policy failed")
	ErrPostmap      = errors.New("publish: postmap failed")
	ErrReload       = errors.New("publish: reload command failed")
)
