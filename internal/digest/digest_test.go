package digest_test

import (
	"fmt"

	"github.com/bulkhead-run/bulkhead/internal/digest"
)

func ExampleOf() {
	v := digest.Of([]byte("hello"))
	fmt.Println(len(v), digest.Short(v))
	fmt.Println(digest.Short("abc"))
	// Output:
	// 64 2cf24dba5fb0
	// abc
}
