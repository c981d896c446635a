package streams

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestReadAndScanRecords(t *testing.T) {
	_, rdb, tl := setup(t, "c1")
	ctx := context.Background()
	if _, err := ReadRecord(ctx, rdb, tl, "nobody@x.test"); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("missing record: %v", err)
	}
	want := Record{Status: "delivered", Code: 250, Host: "mx.x.test", Attempts: 1}
	if err := rdb.HSet(ctx, tl.For("a@x.test").Records, "a@x.test", want.Encode()).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, tl.For("b@x.test").Records, "b@x.test", Record{Status: "queued"}.Encode()).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadRecord(ctx, rdb, tl, "a@x.test"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadRecord = %+v, %v", got, err)
	}
	seen := map[string]string{}
	err := ScanRecords(ctx, rdb, tl, 1, func(f string, r Record) error { seen[f] = r.Status; return nil })
	if err != nil || len(seen) != 2 || seen["a@x.test"] != "delivered" || seen["b@x.test"] != "queued" {
		t.Fatalf("ScanRecords saw %v, %v", seen, err)
	}
	if err := rdb.HSet(ctx, tl.For("c@x.test").Records, "c@x.test", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(ctx, rdb, tl, "c@x.test"); err == nil {
		t.Fatal("corrupt record read")
	}
}
