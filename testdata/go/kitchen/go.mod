module github.com/bulkhead-run/bulkhead/testdata/go/kitchen

go 1.26.0

require github.com/bulkhead-run/bulkhead/sdk-guest/go v0.0.0

replace github.com/bulkhead-run/bulkhead/sdk-guest/go => ../../../sdk-guest/go
