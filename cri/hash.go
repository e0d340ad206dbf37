package cri

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	v1 "k8s.io/api/core/v1"
)

// ContainerHash is a stable hash of a container spec: the FNV-64a of its JSON encoding, as 16 hex
// digits. The JSON encoding of a v1.Container is deterministic (struct fields in declaration order,
// map keys sorted, quantities in canonical form), so the same spec hashes the same in every process
// and across restarts; it is written on each container as AnnotationContainerHash, and a different
// hash means the spec changed and the container must be replaced.
//
// Fields added to v1.Container by a newer k8s.io/api are omitted from the JSON while unset, so an
// upgrade of the API types does not change the hash of existing containers.
func ContainerHash(c *v1.Container) string {
	h := fnv.New64a()
	data, err := json.Marshal(c)
	if err != nil {
		// A v1.Container always encodes; should it ever fail, fall back to Go's own printing of
		// the spec so the hash is still a function of it.
		data = fmt.Appendf(nil, "%#v", c)
	}
	h.Write(data)
	return fmt.Sprintf("%016x", h.Sum64())
}
