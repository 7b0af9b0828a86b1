package promtest

import (
	"math"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
)

// ApproxVectors compares query results (model.Vector) sample by sample,
// with values within 1e-9 relative and NaN equal to NaN: the real server
// and the embedded engine sum in different orders. (cmp would otherwise
// use the exact Equal methods of model.Vector and *model.Sample.)
var ApproxVectors = cmp.Options{
	cmp.Transformer("samples", func(v model.Vector) []*model.Sample { return v }),
	cmp.Comparer(func(a, b *model.Sample) bool {
		if a == nil || b == nil {
			return a == b
		}
		x, y := float64(a.Value), float64(b.Value)
		close := (math.IsNaN(x) && math.IsNaN(y)) || x == y || math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
		return close && a.Metric.Equal(b.Metric) && a.Timestamp == b.Timestamp && a.Histogram.Equal(b.Histogram)
	}),
}
