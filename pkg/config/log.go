package config

import (
	"io"
	"log/slog"
	"strings"
)

// Log is how the engine writes its log: format "text" (default) or
// "json", and the lowest level written: "debug", "info" (default),
// "warn" or "error".
type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func (l Log) validate() error {
	switch strings.ToLower(l.Format) {
	case "", "text", "json":
	default:
		return invalid("log.format", "%q must be text or json", l.Format)
	}
	if _, ok := logLevels[strings.ToLower(l.Level)]; !ok && l.Level != "" {
		return invalid("log.level", "%q must be debug, info, warn or error", l.Level)
	}
	return nil
}

// Logger is a logger writing to w as l says; debug forces the debug level
// (the engine's -v flag).
func (l Log) Logger(w io.Writer, debug bool) *slog.Logger {
	level, ok := logLevels[strings.ToLower(l.Level)]
	if !ok {
		level = slog.LevelInfo
	}
	if debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(l.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
