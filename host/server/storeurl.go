package server

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Redacted replaces a password in what RedactURL returns.
const Redacted = "xxxxx"

// IsPostgresURL reports whether s selects PostgreSQL: a postgres:// or
// postgresql:// URL.
func IsPostgresURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	scheme = strings.ToLower(scheme)
	return scheme == "postgres" || scheme == "postgresql"
}

// CheckStoreURL checks a store URL: "" (the embedded store) or a
// well-formed postgres:// or postgresql:// URL. Its errors never repeat
// the URL, which may hold a password.
func CheckStoreURL(s string) error {
	if s == "" {
		return nil
	}
	if !IsPostgresURL(s) {
		scheme, _, ok := strings.Cut(s, "://")
		if !ok || strings.ContainsAny(scheme, "@:/") {
			return errors.New("want a postgres:// or postgresql:// URL (empty: the embedded store)")
		}
		return fmt.Errorf("unknown scheme %q: want postgres:// or postgresql:// (empty: the embedded store)", scheme)
	}
	if _, err := url.Parse(s); err != nil {
		return errors.New("malformed postgres:// URL")
	}
	return nil
}

// RedactURL returns s with its password (in the user information or a
// password query parameter) replaced by Redacted. A string that does not
// parse as a URL is replaced whole when it may hold a password.
func RedactURL(s string) string {
	if s == "" {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") || strings.Contains(strings.ToLower(s), "password") {
			return Redacted
		}
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Redacted)
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", Redacted)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// StorePassword returns the password a store URL holds, "" when none.
func StorePassword(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		return pw
	}
	return u.Query().Get("password")
}
