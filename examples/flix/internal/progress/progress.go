// Package progress is the contract of playback's progress events, which
// history and recommendations consume: their topic and their payload,
// stated once, by the service that publishes them.
package progress

// Topic is the topic of the event playback publishes for every progress
// report (POST /sessions/{id}/progress); its payload is a Report.
const Topic = "progress"

// Report is a progress report, as playback records it, answers it and
// publishes it.
type Report struct {
	Profile   string  `json:"profile"`
	Title     int64   `json:"title"`
	Session   string  `json:"session"`
	PositionS float64 `json:"position_s"`
	DurationS float64 `json:"duration_s"`
	At        int64   `json:"at"` // Unix milliseconds
}
