package bucket

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// GoKitLogger adapts a slog logger to the go-kit logger objstore takes. A nil logger discards.
func GoKitLogger(l *slog.Logger) log.Logger {
	if l == nil {
		return log.NewNopLogger()
	}
	return goKitAdapter{l: l}
}

type goKitAdapter struct{ l *slog.Logger }

func (a goKitAdapter) Log(keyvals ...any) error {
	lvl, msg := slog.LevelInfo, ""
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		switch {
		case keyvals[i] == level.Key():
			lvl = slogLevel(fmt.Sprint(keyvals[i+1]))
		case key == "msg" && msg == "":
			msg = fmt.Sprint(keyvals[i+1])
		default:
			attrs = append(attrs, slog.Any(key, keyvals[i+1]))
		}
	}
	a.l.LogAttrs(context.Background(), lvl, msg, attrs...)
	return nil
}

func slogLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
