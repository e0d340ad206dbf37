package kubeclient

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// EventSink is the event recorder's sink (record.EventSink) on an EventInterface, as client-go's
// typedcorev1.EventSinkImpl: each call writes into the event's namespace.
type EventSink struct {
	Interface EventInterface
}

func (s *EventSink) Create(event *corev1.Event) (*corev1.Event, error) {
	return s.Interface.CreateWithEventNamespaceWithContext(context.Background(), event)
}

func (s *EventSink) Update(event *corev1.Event) (*corev1.Event, error) {
	return s.Interface.UpdateWithEventNamespaceWithContext(context.Background(), event)
}

func (s *EventSink) Patch(event *corev1.Event, data []byte) (*corev1.Event, error) {
	return s.Interface.PatchWithEventNamespaceWithContext(context.Background(), event, data)
}
