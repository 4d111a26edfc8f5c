package admin

import (
	"fmt"
	"time"
)

// The activity chart of the status page: one row of bars per series
// (accepted, delivered, deferred, bounced), one bar per minute of the
// last hour, all rows on one scale, drawn as inline SVG by the page
// template (no script: the Content-Security-Policy stays default-src
// 'none'). Each bar has a <title>, the browser's tooltip.

// Chart geometry, in SVG user units (pixels at 100 %).
const (
	chartLabelW = 150 // the series names and totals, on the left
	chartBarW   = 11  // one minute's bar
	chartStep   = 14  // from one bar to the next
	chartPadR   = 24  // room for the last tick's label
	chartRowH   = 46  // one series
	chartBarMax = 36  // the tallest bar
	chartAxisH  = 22  // the time axis under the rows
)

// chart is what the template draws.
type chart struct {
	Width, Height int
	BarW          int
	Max           int // the count of the tallest bar
	Rows          []chartRow
	Ticks         []chartTick
	Title         string
}

// chartRow is one series.
type chartRow struct {
	Name, Class string
	Total       int
	Base        int // the y of the row's baseline
	LabelY      int
	Bars        []chartBar
}

// chartBar is one minute of a series; zero minutes have none.
type chartBar struct {
	X, Y, H int
	Title   string
}

// chartTick labels the time axis.
type chartTick struct {
	X     int
	Label string
}

// newChart lays out the chart of minutes (oldest first, as
// Events.Activity returns them).
func newChart(minutes []Minute) *chart {
	series := []struct {
		name, class string
		get         func(Minute) int
	}{
		{"accepted", "s-acc", func(m Minute) int { return m.Accepted }},
		{"delivered", "s-del", func(m Minute) int { return m.Delivered }},
		{"deferred", "s-def", func(m Minute) int { return m.Deferred }},
		{"bounced", "s-bou", func(m Minute) int { return m.Bounced }},
	}
	c := &chart{Width: chartLabelW + len(minutes)*chartStep + chartPadR, Height: len(series)*chartRowH + chartAxisH,
		BarW: chartBarW}
	for _, m := range minutes {
		for _, s := range series {
			c.Max = max(c.Max, s.get(m))
		}
	}
	scale := max(c.Max, 1)
	for i, s := range series {
		row := chartRow{Name: s.name, Class: s.class, Base: (i+1)*chartRowH - 4}
		row.LabelY = row.Base - chartBarMax/2 + 4
		for j, m := range minutes {
			n := s.get(m)
			row.Total += n
			if n == 0 {
				continue
			}
			h := max(n*chartBarMax/scale, 2)
			row.Bars = append(row.Bars, chartBar{X: chartLabelW + j*chartStep, Y: row.Base - h, H: h,
				Title: fmt.Sprintf("%s UTC: %d %s", m.Start.UTC().Format("15:04"), n, s.name)})
		}
		c.Rows = append(c.Rows, row)
	}
	n := len(minutes)
	for _, back := range []int{60, 45, 30, 15, 0} {
		if back > n {
			continue
		}
		// Under the middle of the bar of the minute back minutes ago.
		x := chartLabelW + (n-max(back, 1))*chartStep + chartBarW/2
		label := fmt.Sprintf("−%d min", back)
		if back == 0 {
			label = "now"
		}
		c.Ticks = append(c.Ticks, chartTick{X: x, Label: label})
	}
	if n > 0 {
		c.Title = fmt.Sprintf("Messages per minute, %s to %s UTC", minutes[0].Start.UTC().Format("15:04"),
			minutes[n-1].Start.Add(time.Minute).UTC().Format("15:04"))
	}
	return c
}
