module github.com/bulkhead-run/bulkhead/sdk-guest/go

go 1.26.0
