package badgerstore_test

func crashChild() bool { return false }
