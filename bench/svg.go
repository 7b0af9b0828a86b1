package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// palette colours the baselines' curves (Okabe–Ito, readable by most
// colour-blind readers).
var palette = []string{"#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2", "#999999", "#F0E442"}

// WriteSVG plots the trade-off: for each baseline, false-rollback rate on
// the healthy corpus against median detection latency as its threshold
// sweeps, and phaseguard's point on the same axes. Thresholds without any
// detection have no latency and are left out.
func (r *Report) WriteSVG(w io.Writer) error {
	const (
		width, height          = 820, 520
		left, right, top, base = 70, 250, 40, 60
	)
	pw, ph := float64(width-left-right), float64(height-top-base)
	type pt struct{ x, y float64 }
	var curves [][]pt
	maxX, maxY := 60.0, 1.0 // seconds, percent
	point := func(f Figures) (pt, bool) {
		if len(f.Latency) == 0 || math.IsNaN(f.FRRate) {
			return pt{}, false
		}
		return pt{Percentile(f.Latency, 0.5).Seconds(), f.FRRate * 100}, true
	}
	for _, c := range r.Curves {
		var cs []pt
		for _, f := range c.Points {
			if q, ok := point(f); ok {
				cs = append(cs, q)
				maxX, maxY = math.Max(maxX, q.x), math.Max(maxY, q.y)
			}
		}
		curves = append(curves, cs)
	}
	guard, hasGuard := point(r.Guard)
	if hasGuard {
		maxX, maxY = math.Max(maxX, guard.x), math.Max(maxY, guard.y)
	}
	xStep, yStep := timeStep(maxX), niceStep(maxY)
	maxX, maxY = math.Ceil(maxX/xStep)*xStep, math.Ceil(maxY/yStep)*yStep
	X := func(x float64) float64 { return float64(left) + x/maxX*pw }
	Y := func(y float64) float64 { return float64(top) + ph - y/maxY*ph }

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="14" font-weight="bold">False rollbacks against detection latency (seed %d, %d healthy, %d faulty)</text>`+"\n", left, r.Seed, r.Guard.Healthy, r.count(Faulty))
	for x := 0.0; x <= maxX+xStep/2; x += xStep {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", X(x), top, X(x), Y(0))
		p(`<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", X(x), Y(0)+16, dur(time.Duration(x*float64(time.Second))))
	}
	for y := 0.0; y <= maxY+yStep/2; y += yStep {
		p(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, Y(y), X(maxX), Y(y))
		p(`<text x="%d" y="%.1f" text-anchor="end">%s %%</text>`+"\n", left-6, Y(y)+4, trimFloat(y))
	}
	p(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, Y(0), X(maxX), Y(0))
	p(`<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="black"/>`+"\n", left, top, left, Y(0))
	p(`<text x="%.1f" y="%d" text-anchor="middle">median detection latency, onset to first failed look</text>`+"\n", X(maxX/2), height-18)
	p(`<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">false-rollback rate on healthy canaries</text>`+"\n", Y(maxY/2))

	legendY := top + 10
	legend := func(label, marker string) {
		p(`%s<text x="%d" y="%d">%s</text>`+"\n", marker, width-right+38, legendY+4, html.EscapeString(label))
		legendY += 20
	}
	for i, cs := range curves {
		color := palette[i%len(palette)]
		var pts []string
		for _, q := range cs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(q.x), Y(q.y)))
		}
		if len(pts) > 0 {
			p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
			for _, q := range cs {
				p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", X(q.x), Y(q.y), color)
			}
		}
		legend(r.Curves[i].Baseline.Name(), fmt.Sprintf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><circle cx="%d" cy="%d" r="3" fill="%s"/>`,
			width-right+10, legendY, width-right+32, legendY, color, width-right+21, legendY, color))
	}
	if hasGuard {
		gx, gy := X(guard.x), Y(guard.y)
		p(`<path d="M %.1f %.1f l 8 8 l -8 8 l -8 -8 z" fill="black"/>`+"\n", gx, gy-8)
		p(`<text x="%.1f" y="%.1f" font-weight="bold">phaseguard</text>`+"\n", gx+10, gy-10)
		legend("phaseguard ("+r.Judge.Policy.Metadata.Name+")", fmt.Sprintf(`<path d="M %d %d l 6 6 l -6 6 l -6 -6 z" fill="black"/>`, width-right+21, legendY-6))
	}
	p(`<text x="%d" y="%d" fill="#555">Each curve: one baseline, its</text>`+"\n", width-right+10, legendY+20)
	p(`<text x="%d" y="%d" fill="#555">threshold swept %s–%s× the budget.</text>`+"\n", width-right+10, legendY+36, trimFloat(r.Sweep[0]), trimFloat(r.Sweep[len(r.Sweep)-1]))
	p("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceStep returns a grid step of 1, 2 or 5 times a power of ten giving
// about five divisions of max.
func niceStep(max float64) float64 {
	raw := max / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

// timeStep returns a grid step in seconds that reads well as a duration,
// giving at most about eight divisions of max seconds.
func timeStep(max float64) float64 {
	for _, s := range []float64{10, 15, 30, 60, 120, 300, 600, 900, 1800} {
		if max/s <= 8 {
			return s
		}
	}
	return 3600
}

func trimFloat(x float64) string { return fmt.Sprintf("%g", math.Round(x*1000)/1000) }
