package admission_test

import (
	"testing"

	"postern/internal/admission"
	"postern/internal/admission/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) admission.Store { return admission.NewMemoryStore() })
}
