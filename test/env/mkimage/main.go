// Command mkimage writes a single-layer OCI image-layout tarball that
// `ctr images import` accepts, without a registry, a daemon or any
// dependency beyond the standard library.
//
// The layer is made of a root filesystem directory (-rootfs), of single files
// (-file SRC=DST), or both (files override the directory). The image is named
// by the org.opencontainers.image.ref.name and io.containerd.image.name
// annotations of its index.json entry, so that
//
//	ctr -n k8s.io images import out.tar
//
// registers it under -name. The output is reproducible: entries are sorted,
// owned by 0:0 and stamped with a fixed time, so equal inputs give equal
// digests.
//
// Example:
//
//	mkimage -name localhost/pause:3.9 -file ./pause=/pause -entrypoint /pause -o pause.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerdRef = "io.containerd.image.name"

	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// epoch stamps every entry and the image config, for reproducible digests.
var epoch = time.Unix(0, 0).UTC()

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		out        = flag.String("o", "", "output OCI image-layout tar (required)")
		name       = flag.String("name", "", "image reference, e.g. localhost/busybox:latest (required)")
		rootfs     = flag.String("rootfs", "", "directory whose content becomes the image root")
		entrypoint = flag.String("entrypoint", "", `entrypoint: a JSON array or words split on spaces`)
		cmd        = flag.String("cmd", "", `cmd: a JSON array or words split on spaces`)
		workdir    = flag.String("workdir", "/", "working directory")
		user       = flag.String("user", "", "user to run as (default: the runtime's, i.e. root)")
		arch       = flag.String("arch", runtime.GOARCH, "image architecture (GOARCH spelling)")
		osName     = flag.String("os", "linux", "image OS")
		files      listFlag
		env        listFlag
	)
	flag.Var(&files, "file", "SRC=DST: add the regular file SRC at DST in the image (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE environment variable (repeatable; default "+defaultPath+")")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage -o OUT.tar -name REF [-rootfs DIR] [-file SRC=DST]... [-entrypoint ARGS] [-cmd ARGS]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || *name == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *rootfs == "" && len(files) == 0 {
		fail(errors.New("nothing to put in the image: give -rootfs and/or -file"))
	}
	if len(env) == 0 {
		env = listFlag{defaultPath}
	}
	ep, err := parseArgs(*entrypoint)
	if err != nil {
		fail(fmt.Errorf("-entrypoint %q: %w", *entrypoint, err))
	}
	cm, err := parseArgs(*cmd)
	if err != nil {
		fail(fmt.Errorf("-cmd %q: %w", *cmd, err))
	}

	l := newLayer()
	if *rootfs != "" {
		if err := l.addTree(*rootfs); err != nil {
			fail(err)
		}
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok || src == "" || dst == "" {
			fail(fmt.Errorf("-file %q: want SRC=DST", f))
		}
		if err := l.addFile(src, dst); err != nil {
			fail(err)
		}
	}

	img := imageConfig{
		Created:      epoch,
		Architecture: *arch,
		OS:           *osName,
		Config: execConfig{
			Env:        env,
			Entrypoint: ep,
			Cmd:        cm,
			WorkingDir: *workdir,
			User:       *user,
		},
		History: []history{{Created: epoch, CreatedBy: "berth test/env/mkimage"}},
	}
	if err := writeLayout(*out, *name, l, img); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
	os.Exit(1)
}

// parseArgs reads `["a","b c"]` as JSON and anything else as space-separated
// words. The empty string means no value.
func parseArgs(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return strings.Fields(s), nil
}

// entry is one member of the layer: a header and, for regular files, where
// to read the content from.
type entry struct {
	hdr *tar.Header
	src string
}

type layer struct {
	entries map[string]*entry // by clean path without leading slash
}

func newLayer() *layer { return &layer{entries: map[string]*entry{}} }

// clean turns an image path into a tar member name: relative, slash-separated,
// without "." or ".." elements.
func clean(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(p)), "/")
	if c == "" {
		return "", fmt.Errorf("path %q names the image root", p)
	}
	return c, nil
}

func normalise(h *tar.Header, name string) {
	h.Name = name
	if h.Typeflag == tar.TypeDir {
		h.Name += "/"
	}
	h.Uid, h.Gid = 0, 0
	h.Uname, h.Gname = "", ""
	h.ModTime = epoch
	h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
	h.PAXRecords = nil
	h.Format = tar.FormatUnknown
	h.Devmajor, h.Devminor = 0, 0
}

// addTree adds everything under dir. Hard links inside the tree stay hard
// links; devices, sockets and FIFOs are refused.
func (l *layer) addTree(dir string) error {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		name, err := clean(rel)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var link string
		switch m := fi.Mode(); {
		case m&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case m.IsDir(), m.IsRegular():
		default:
			return fmt.Errorf("%s: unsupported file type %v", p, m.Type())
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		normalise(h, name)
		e := &entry{hdr: h}
		if fi.Mode().IsRegular() {
			e.src = p
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				key := inode{uint64(st.Dev), uint64(st.Ino)}
				if first, ok := seen[key]; ok {
					h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
					e.src = ""
				} else {
					seen[key] = name
				}
			}
		}
		l.entries[name] = e
		return nil
	})
}

// addFile adds the regular file src (symlinks followed) at dst.
func (l *layer) addFile(src, dst string) error {
	name, err := clean(dst)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("-file %s: not a regular file", src)
	}
	h, err := tar.FileInfoHeader(fi, "")
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	normalise(h, name)
	l.entries[name] = &entry{hdr: h, src: src}
	return nil
}

// write emits the layer as a tar stream, parents before children, adding
// any missing parent directory with mode 0755.
func (l *layer) write(w io.Writer) error {
	for name := range l.entries {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := l.entries[dir]; ok {
				continue
			}
			h := &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}
			normalise(h, dir)
			l.entries[dir] = &entry{hdr: h}
		}
	}
	names := make([]string, 0, len(l.entries))
	for name := range l.entries {
		names = append(names, name)
	}
	sort.Strings(names) // a parent sorts before its children

	tw := tar.NewWriter(w)
	for _, name := range names {
		e := l.entries[name]
		if err := tw.WriteHeader(e.hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if e.src == "" {
			continue
		}
		if err := copyFile(tw, e.src, e.hdr.Size); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, f)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("%s: changed size while being read (%d, then %d bytes)", src, size, n)
	}
	return nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type execConfig struct {
	User       string   `json:"User,omitempty"`
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type history struct {
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

type imageConfig struct {
	Created      time.Time  `json:"created"`
	Architecture string     `json:"architecture"`
	OS           string     `json:"os"`
	Config       execConfig `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []history `json:"history,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// writeLayout builds the blobs and writes the OCI image layout as a tar file,
// atomically: out appears complete or not at all.
func writeLayout(out, name string, l *layer, img imageConfig) error {
	// Layer: gzip(tar); the diff ID is the digest of the uncompressed tar.
	var gz bytes.Buffer
	diff := sha256.New()
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := l.write(io.MultiWriter(zw, diff)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	layerBlob := gz.Bytes()
	img.RootFS.Type = "layers"
	img.RootFS.DiffIDs = []string{fmt.Sprintf("sha256:%x", diff.Sum(nil))}

	configBlob, err := json.Marshal(img)
	if err != nil {
		return err
	}
	manifestBlob, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        descriptor{MediaType: mediaTypeConfig, Digest: digest(configBlob), Size: int64(len(configBlob))},
		Layers:        []descriptor{{MediaType: mediaTypeLayer, Digest: digest(layerBlob), Size: int64(len(layerBlob))}},
	})
	if err != nil {
		return err
	}
	indexBlob, err := json.Marshal(index{
		SchemaVersion: 2,
		MediaType:     mediaTypeIndex,
		Manifests: []descriptor{{
			MediaType: mediaTypeManifest,
			Digest:    digest(manifestBlob),
			Size:      int64(len(manifestBlob)),
			Platform:  &platform{Architecture: img.Architecture, OS: img.OS},
			Annotations: map[string]string{
				annotationRefName:       name,
				annotationContainerdRef: name,
			},
		}},
	})
	if err != nil {
		return err
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	tw := tar.NewWriter(tmp)
	members := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"blobs/", nil},
		{"blobs/sha256/", nil},
		{blobPath(layerBlob), layerBlob},
		{blobPath(configBlob), configBlob},
		{blobPath(manifestBlob), manifestBlob},
		{"index.json", indexBlob},
	}
	for _, m := range members {
		h := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: epoch, Typeflag: tar.TypeReg}
		if strings.HasSuffix(m.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(m.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func blobPath(b []byte) string { return fmt.Sprintf("blobs/sha256/%x", sha256.Sum256(b)) }
