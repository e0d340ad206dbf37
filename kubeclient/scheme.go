package kubeclient

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

// Scheme knows the group versions Berth talks (core/v1, coordination.k8s.io/v1,
// authentication.k8s.io/v1, authorization.k8s.io/v1) and the meta/v1 types (Status, WatchEvent,
// the options), as client-go's kubernetes/scheme.Scheme does for every group.
var Scheme = runtime.NewScheme()

// Codecs are the serializers (JSON, YAML, protobuf) of Scheme's types.
var Codecs = serializer.NewCodecFactory(Scheme)

// ParameterCodec encodes the options (GetOptions, ListOptions, ...) as query parameters.
var ParameterCodec = runtime.NewParameterCodec(Scheme)

func init() {
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	groups := runtime.SchemeBuilder{
		corev1.AddToScheme,
		coordinationv1.AddToScheme,
		authenticationv1.AddToScheme,
		authorizationv1.AddToScheme,
	}
	utilruntime.Must(groups.AddToScheme(Scheme))
}
