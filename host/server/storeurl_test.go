package server

import (
	"strings"
	"testing"
)

func TestCheckStoreURL(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{name: "empty", give: ""},
		{name: "postgres", give: "postgres://u:pw@db:5432/bh?sslmode=require"},
		{name: "postgresql", give: "postgresql:///bh?host=/run/postgresql"},
		{name: "upper case scheme", give: "POSTGRES://db/bh"},
		{name: "other scheme", give: "mysql://u:pw@db/bh", wantErr: `unknown scheme "mysql"`},
		{name: "no scheme", give: "host=db password=pw", wantErr: "want a postgres://"},
		{name: "malformed", give: "postgres://u:pw@[bad", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckStoreURL(tt.give)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckStoreURL(%q) = %v", tt.give, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "pw") {
				t.Fatalf("CheckStoreURL(%q) = %v, want %q without the password", tt.give, err, tt.wantErr)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "empty", give: "", want: ""},
		{name: "no password", give: "postgres://u@db/bh", want: "postgres://u@db/bh"},
		{name: "password", give: "postgres://u:s3cret@db:5432/bh?sslmode=require", want: "postgres://u:xxxxx@db:5432/bh?sslmode=require"},
		{name: "password parameter", give: "postgres://db/bh?password=s3cret&sslmode=disable", want: "postgres://db/bh?password=xxxxx&sslmode=disable"},
		{name: "unparsable", give: "postgres://u:s3cret@[bad", want: "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.give); got != tt.want {
				t.Fatalf("RedactURL(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}
