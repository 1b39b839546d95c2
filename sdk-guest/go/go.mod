module github.com/bulkhead-run/bulkhead/sdk-guest/go

go 1.26.0

require github.com/bulkhead-run/bulkhead v0.0.0

replace github.com/bulkhead-run/bulkhead => ../..
