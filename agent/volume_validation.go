package agent

import (
	"path"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateVolumes checks a static pod's volumes and every container's volumeMounts with the API
// server's rules for the kinds Berth supports (unsupported kinds are unsupportedFields' business).
// API pods were validated by the API server.
func validateVolumes(spec *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	containers := map[string]bool{}
	for _, c := range spec.Containers {
		containers[c.Name] = true
	}
	for _, c := range spec.InitContainers {
		containers[c.Name] = true
	}
	for i := range spec.Volumes {
		vol := &spec.Volumes[i]
		vp := p.Child("volumes").Index(i)
		errs = append(errs, validateDNSLabelField(vol.Name, vp.Child("name"))...)
		if vol.Name == "" {
			errs = append(errs, field.Required(vp.Child("name"), ""))
		} else if names[vol.Name] {
			errs = append(errs, field.Duplicate(vp.Child("name"), vol.Name))
		}
		names[vol.Name] = true
		errs = append(errs, validateVolumeSource(&vol.VolumeSource, containers, vp)...)
	}
	all := make([]v1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	paths := make([]*field.Path, 0, cap(all))
	for i := range spec.InitContainers {
		all = append(all, spec.InitContainers[i])
		paths = append(paths, p.Child("initContainers").Index(i))
	}
	for i := range spec.Containers {
		all = append(all, spec.Containers[i])
		paths = append(paths, p.Child("containers").Index(i))
	}
	for ci, c := range all {
		mountPaths := map[string]bool{}
		for i, m := range c.VolumeMounts {
			mp := paths[ci].Child("volumeMounts").Index(i)
			if m.Name == "" {
				errs = append(errs, field.Required(mp.Child("name"), ""))
			} else if !names[m.Name] {
				errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
			}
			if m.MountPath == "" {
				errs = append(errs, field.Required(mp.Child("mountPath"), ""))
			} else if mountPaths[m.MountPath] {
				errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
			}
			mountPaths[m.MountPath] = true
			if m.SubPath != "" && m.SubPathExpr != "" {
				errs = append(errs, field.Invalid(mp.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			if m.SubPath != "" {
				errs = append(errs, validateLocalPath(m.SubPath, mp.Child("subPath"))...)
			}
			if m.SubPathExpr != "" {
				errs = append(errs, validateLocalPath(m.SubPathExpr, mp.Child("subPathExpr"))...)
			}
			if m.MountPropagation != nil {
				errs = append(errs, validateEnum(*m.MountPropagation, mp.Child("mountPropagation"),
					[]v1.MountPropagationMode{v1.MountPropagationNone, v1.MountPropagationHostToContainer, v1.MountPropagationBidirectional})...)
				if *m.MountPropagation == v1.MountPropagationBidirectional &&
					(c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged) {
					errs = append(errs, field.Forbidden(mp.Child("mountPropagation"), "Bidirectional mount propagation is available only to privileged containers"))
				}
			}
		}
	}
	return errs
}

func validateVolumeSource(s *v1.VolumeSource, containers map[string]bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	kinds := 0
	if s.HostPath != nil {
		kinds++
		hp := p.Child("hostPath")
		if s.HostPath.Path == "" {
			errs = append(errs, field.Required(hp.Child("path"), ""))
		} else if hasDotDot(s.HostPath.Path) {
			errs = append(errs, field.Invalid(hp.Child("path"), s.HostPath.Path, "must not contain '..'"))
		}
		if s.HostPath.Type != nil && *s.HostPath.Type != v1.HostPathUnset {
			errs = append(errs, validateEnum(*s.HostPath.Type, hp.Child("type"), []v1.HostPathType{v1.HostPathUnset,
				v1.HostPathDirectoryOrCreate, v1.HostPathDirectory, v1.HostPathFileOrCreate, v1.HostPathFile,
				v1.HostPathSocket, v1.HostPathCharDev, v1.HostPathBlockDev})...)
		}
	}
	if s.EmptyDir != nil {
		kinds++
		ep := p.Child("emptyDir")
		if s.EmptyDir.Medium != v1.StorageMediumDefault {
			errs = append(errs, validateEnum(s.EmptyDir.Medium, ep.Child("medium"), []v1.StorageMedium{v1.StorageMediumMemory})...)
		}
		if s.EmptyDir.SizeLimit != nil && s.EmptyDir.SizeLimit.Sign() < 0 {
			errs = append(errs, field.Invalid(ep.Child("sizeLimit"), s.EmptyDir.SizeLimit.String(), "must be greater than or equal to 0"))
		}
	}
	if s.DownwardAPI != nil {
		kinds++
		dp := p.Child("downwardAPI")
		errs = append(errs, validateMode(s.DownwardAPI.DefaultMode, dp.Child("defaultMode"))...)
		errs = append(errs, validateDownwardItems(s.DownwardAPI.Items, containers, dp.Child("items"))...)
	}
	if s.Projected != nil {
		kinds++
		pp := p.Child("projected")
		errs = append(errs, validateMode(s.Projected.DefaultMode, pp.Child("defaultMode"))...)
		for i, src := range s.Projected.Sources {
			sp := pp.Child("sources").Index(i)
			if src.DownwardAPI == nil {
				// Other kinds are unsupportedFields' business; a source with none is an error here.
				if src.ConfigMap == nil && src.Secret == nil && src.ServiceAccountToken == nil && src.ClusterTrustBundle == nil && src.PodCertificate == nil {
					errs = append(errs, field.Required(sp, "must specify exactly one projection source"))
				}
				continue
			}
			errs = append(errs, validateDownwardItems(src.DownwardAPI.Items, containers, sp.Child("downwardAPI").Child("items"))...)
		}
	}
	// configMap, secret and the other kinds are rejected by unsupportedFields; count them so that
	// the error here is only about a volume with no kind at all.
	if s.ConfigMap != nil || s.Secret != nil || s.PersistentVolumeClaim != nil || s.CSI != nil || s.Ephemeral != nil ||
		s.NFS != nil || s.ISCSI != nil || s.Image != nil || s.FC != nil || s.RBD != nil || s.CephFS != nil ||
		s.Glusterfs != nil || s.AWSElasticBlockStore != nil || s.GCEPersistentDisk != nil || s.AzureDisk != nil ||
		s.AzureFile != nil || s.GitRepo != nil || s.Cinder != nil || s.FlexVolume != nil || s.Flocker != nil ||
		s.VsphereVolume != nil || s.Quobyte != nil || s.PhotonPersistentDisk != nil || s.PortworxVolume != nil ||
		s.ScaleIO != nil || s.StorageOS != nil {
		kinds++
	}
	switch {
	case kinds == 0:
		errs = append(errs, field.Required(p, "must specify a volume type"))
	case kinds > 1:
		errs = append(errs, field.Forbidden(p, "may not specify more than 1 volume type"))
	}
	return errs
}

func validateDownwardItems(items []v1.DownwardAPIVolumeFile, containers map[string]bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, it := range items {
		ip := p.Index(i)
		errs = append(errs, validateLocalPath(it.Path, ip.Child("path"))...)
		errs = append(errs, validateMode(it.Mode, ip.Child("mode"))...)
		switch {
		case it.FieldRef != nil && it.ResourceFieldRef != nil:
			errs = append(errs, field.Invalid(ip, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		case it.FieldRef != nil:
			fp := it.FieldRef.FieldPath
			switch {
			case fp == "metadata.name", fp == "metadata.namespace", fp == "metadata.uid", fp == "metadata.labels", fp == "metadata.annotations",
				strings.HasPrefix(fp, "metadata.labels['") && strings.HasSuffix(fp, "']"),
				strings.HasPrefix(fp, "metadata.annotations['") && strings.HasSuffix(fp, "']"):
			default:
				errs = append(errs, field.NotSupported(ip.Child("fieldRef", "fieldPath"), fp,
					[]string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations", "metadata.labels['<KEY>']", "metadata.annotations['<KEY>']"}))
			}
		case it.ResourceFieldRef != nil:
			rp := ip.Child("resourceFieldRef")
			if it.ResourceFieldRef.ContainerName == "" {
				errs = append(errs, field.Required(rp.Child("containerName"), "a downwardAPI volume's resourceFieldRef names its container"))
			} else if !containers[it.ResourceFieldRef.ContainerName] {
				errs = append(errs, field.NotFound(rp.Child("containerName"), it.ResourceFieldRef.ContainerName))
			}
			errs = append(errs, validateEnvResourceRef(it.ResourceFieldRef, containers, rp)...)
		default:
			errs = append(errs, field.Required(ip, "must specify fieldRef or resourceFieldRef"))
		}
	}
	return errs
}

func validateMode(m *int32, p *field.Path) field.ErrorList {
	if m != nil && (*m < 0 || *m > 0o777) {
		return field.ErrorList{field.Invalid(p, *m, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

// validateLocalPath is the API's rule for a path inside a volume: relative, no '..' element.
func validateLocalPath(s string, p *field.Path) field.ErrorList {
	switch {
	case s == "":
		return field.ErrorList{field.Required(p, "")}
	case path.IsAbs(s):
		return field.ErrorList{field.Invalid(p, s, "must be a relative path")}
	case hasDotDot(s):
		return field.ErrorList{field.Invalid(p, s, "must not contain '..'")}
	case strings.HasPrefix(s, ".."):
		return field.ErrorList{field.Invalid(p, s, "must not start with '..'")}
	}
	return nil
}

func hasDotDot(s string) bool {
	for _, el := range strings.Split(s, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}
