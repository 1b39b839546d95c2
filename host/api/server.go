package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ServerConfig holds the listen address and the server's timeouts; zero
// timeouts take the defaults.
type ServerConfig struct {
	Addr              string
	ReadHeaderTimeout time.Duration // default 5s
	ReadTimeout       time.Duration // default 30s
	WriteTimeout      time.Duration // default 5m
	IdleTimeout       time.Duration // default 2m
}

// Server serves a handler over HTTP with timeouts set. Start binds the
// address and returns; Stop shuts down gracefully. Start and Stop follow
// the usual lifecycle (Stop is idempotent and waits for the serving
// goroutine).
type Server struct {
	srv  *http.Server
	log  *slog.Logger
	ln   net.Listener
	done chan struct{}
	once sync.Once
	err  error
}

// NewServer returns a server of h; it does no I/O.
func NewServer(cfg ServerConfig, h http.Handler, log *slog.Logger) *Server {
	def := func(d, v time.Duration) time.Duration {
		if d <= 0 {
			return v
		}
		return d
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, srv: &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadHeaderTimeout: def(cfg.ReadHeaderTimeout, 5*time.Second),
		ReadTimeout:       def(cfg.ReadTimeout, 30*time.Second),
		WriteTimeout:      def(cfg.WriteTimeout, 5*time.Minute),
		IdleTimeout:       def(cfg.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
}

// Start listens on the address and serves in a goroutine.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("api: listen: %w", err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	s.log.Info("listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the bound address (useful with port 0); "" before Start.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop stops accepting connections and waits, within ctx, for requests in
// flight; then it closes the remaining connections.
func (s *Server) Stop(ctx context.Context) error {
	s.once.Do(func() {
		if s.done == nil {
			return
		}
		if err := s.srv.Shutdown(ctx); err != nil {
			s.err = errors.Join(err, s.srv.Close())
		}
		<-s.done
	})
	return s.err
}
