//go:build integration

package integration

import (
	"debug/elf"
	"os"
	"testing"
)

// TestBinaryIsStatic checks that the binary `make build` made — the one this suite runs and `make
// install` ships — is statically linked: no program interpreter (the dynamic loader) and no shared
// library it needs. It then runs on any Linux without a matching libc, and it does not carry libc
// and ld.so in its resident memory (docs/design.md, "A static binary").
func TestBinaryIsStatic(t *testing.T) {
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		t.Fatal("BERTH_BIN must be set: run the suite with `make integration`")
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter (dynamically linked): build it with CGO_ENABLED=0 (make build)", bin)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("%s: reading its dynamic section: %v", bin, err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v: build it with CGO_ENABLED=0 (make build)", bin, libs)
	}
}
