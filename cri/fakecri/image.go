package fakecri

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// imageSize is the size every fake image reports.
const imageSize = 4 << 20

type image struct {
	id      string   // "sha256:<64 hex>"
	tags    []string // normalised references
	digests []string // repo@sha256:...
}

// ref is what a runtime reports as a container's ImageRef: the repo digest when there is one,
// else the image id.
func (i *image) ref() string {
	if len(i.digests) > 0 {
		return i.digests[0]
	}
	return i.id
}

func (i *image) api() *runtimeapi.Image {
	return &runtimeapi.Image{
		Id:          i.id,
		RepoTags:    slices.Clone(i.tags),
		RepoDigests: slices.Clone(i.digests),
		Size:        imageSize,
		Spec:        &runtimeapi.ImageSpec{Image: i.id},
	}
}

// normalizeRef turns a short image reference into the full one a runtime stores: "nginx" is
// "docker.io/library/nginx:latest", "me/app:1" is "docker.io/me/app:1". Ids ("sha256:...") and
// references with a digest keep their form (a digest reference gets no tag).
func normalizeRef(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	domain, rest, ok := strings.Cut(name, "/")
	if !ok || (!strings.ContainsAny(domain, ".:") && domain != "localhost") {
		domain, rest = "docker.io", name
	}
	if domain == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	full := domain + "/" + rest
	if hasDigest {
		return full + "@" + digest
	}
	if !strings.Contains(rest[strings.LastIndex(rest, "/")+1:], ":") {
		full += ":latest"
	}
	return full
}

// repository is a normalised reference without its tag or digest.
func repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i]
	}
	return ref
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// addImage makes ref present (as if pulled) and returns it. Called with s.mu held or before
// serving.
func (s *Server) addImage(ref string) *image {
	if img := s.lookupImage(ref); img != nil {
		return img
	}
	full := normalizeRef(ref)
	img := &image{id: "sha256:" + hash("image:"+full)}
	if strings.Contains(full, "@") {
		img.digests = []string{full}
	} else {
		img.tags = []string{full}
		img.digests = []string{repository(full) + "@sha256:" + hash("digest:"+full)}
	}
	s.images[img.id] = img
	for _, t := range img.tags {
		s.tags[t] = img
	}
	return img
}

// lookupImage finds a present image by reference, id, id without "sha256:", or repo digest.
func (s *Server) lookupImage(ref string) *image {
	if ref == "" {
		return nil
	}
	if img := s.images[ref]; img != nil {
		return img
	}
	if img := s.images["sha256:"+ref]; img != nil {
		return img
	}
	full := normalizeRef(ref)
	if img := s.tags[full]; img != nil {
		return img
	}
	if strings.Contains(full, "@") {
		for _, img := range s.images {
			if slices.Contains(img.digests, full) {
				return img
			}
		}
	}
	return nil
}

// ListImages lists the present images, or the one the filter names.
func (s *Server) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runtimeapi.ListImagesResponse{Images: s.listImages(req.GetFilter())}, nil
}

// StreamImages is ListImages sent in chunks.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	s.mu.Lock()
	items := s.listImages(req.GetFilter())
	s.mu.Unlock()
	for chunk := range slices.Chunk(items, listChunk) {
		if err := stream.Send(&runtimeapi.StreamImagesResponse{Images: chunk}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) listImages(f *runtimeapi.ImageFilter) []*runtimeapi.Image {
	if ref := f.GetImage().GetImage(); ref != "" {
		if img := s.lookupImage(ref); img != nil {
			return []*runtimeapi.Image{img.api()}
		}
		return []*runtimeapi.Image{}
	}
	out := make([]*runtimeapi.Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img.api())
	}
	slices.SortFunc(out, func(a, b *runtimeapi.Image) int { return strings.Compare(a.Id, b.Id) })
	return out
}

// ImageStatus returns the image, or a response without one when it is not present.
func (s *Server) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	if req.GetImage().GetImage() == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if img := s.lookupImage(req.GetImage().GetImage()); img != nil {
		return &runtimeapi.ImageStatusResponse{Image: img.api()}, nil
	}
	return &runtimeapi.ImageStatusResponse{}, nil
}

// PullImage makes the image present at once and returns its id as the image ref.
func (s *Server) PullImage(_ context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	if req.GetImage().GetImage() == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &runtimeapi.PullImageResponse{ImageRef: s.addImage(req.GetImage().GetImage()).id}, nil
}

// RemoveImage removes a tag (the image goes with its last tag) or, by id or digest, the whole
// image. Removing an image that is not present is not an error.
func (s *Server) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, status.Error(codes.InvalidArgument, "image spec is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img := s.lookupImage(ref)
	if img == nil {
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	if full := normalizeRef(ref); slices.Contains(img.tags, full) && len(img.tags) > 1 {
		img.tags = slices.DeleteFunc(img.tags, func(t string) bool { return t == full })
		delete(s.tags, full)
		return &runtimeapi.RemoveImageResponse{}, nil
	}
	for _, t := range img.tags {
		delete(s.tags, t)
	}
	delete(s.images, img.id)
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports one image filesystem holding the present images, and one container
// filesystem.
func (s *Server) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.now()
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems: []*runtimeapi.FilesystemUsage{{
			Timestamp:  ts,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: "/var/lib/fakecri/images"},
			UsedBytes:  &runtimeapi.UInt64Value{Value: uint64(len(s.images)) * imageSize},
			InodesUsed: &runtimeapi.UInt64Value{Value: uint64(len(s.images)) * 100},
		}},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{{
			Timestamp:  ts,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: "/var/lib/fakecri/containers"},
			UsedBytes:  &runtimeapi.UInt64Value{Value: uint64(len(s.containers)) * 4096},
			InodesUsed: &runtimeapi.UInt64Value{Value: uint64(len(s.containers))},
		}},
	}, nil
}
