package admission

import (
	"context"
	"log/slog"
)

// Notifier tells a domain's contact about a failure or a demotion.
type Notifier interface {
	Notify(ctx context.Context, contact string, n Notice) error
}

// LogNotifier writes notices to a log; it is the default until a mail
// notifier is configured.
type LogNotifier struct{ Log *slog.Logger }

// Notify logs the notice at warning level.
func (l LogNotifier) Notify(ctx context.Context, contact string, n Notice) error {
	log := l.Log
	if log == nil {
		log = slog.Default()
	}
	log.WarnContext(ctx, "notice", "domain", n.Domain, "contact", contact, "code", n.Code, "findings", n.Codes, "message", n.Message)
	return nil
}
