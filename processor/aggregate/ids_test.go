package aggregate

import (
	"regexp"
	"testing"
	"time"
)

func TestIDs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC)
	inc := IncidentID("acme", "rul_1", GroupKey("acme", "rul_1", []string{"nightly-etl"}), at)
	idRE := regexp.MustCompile(`^(grp|inc|alrt)_[0-9a-f]{32}$`)
	for _, tc := range []struct {
		name      string
		got, same string
		differs   []string
	}{
		{
			name: "group key is deterministic and separates its parts",
			got:  GroupKey("acme", "rul_1", []string{"a\x00", "b"}), same: GroupKey("acme", "rul_1", []string{"a\x00", "b"}),
			differs: []string{
				GroupKey("acme", "rul_1", []string{"a", "\x00b"}),
				GroupKey("acme", "rul_1", []string{"a\x00b"}),
				GroupKey("acme", "rul_2", []string{"a\x00", "b"}),
				GroupKey("acme", "rul_1", nil),
			},
		},
		{
			name: "incident id depends on firing_since to the nanosecond",
			got:  inc, same: IncidentID("acme", "rul_1", GroupKey("acme", "rul_1", []string{"nightly-etl"}), at.In(time.FixedZone("x", 3600))),
			differs: []string{
				IncidentID("acme", "rul_1", GroupKey("acme", "rul_1", []string{"nightly-etl"}), at.Add(time.Nanosecond)),
				IncidentID("acme", "rul_1", GroupKey("acme", "rul_1", []string{"other"}), at),
				IncidentID("beta", "rul_1", GroupKey("acme", "rul_1", []string{"nightly-etl"}), at),
			},
		},
		{
			name: "each delivery of an episode has its own alert id",
			got:  FiringAlertID(inc), same: FiringAlertID(inc),
			differs: []string{RepeatAlertID(inc, 1), RepeatAlertID(inc, 2), ResolvedAlertID(inc), FiringAlertID(inc + "x")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.got != tc.same {
				t.Fatalf("not deterministic: %s vs %s", tc.got, tc.same)
			}
			for _, id := range append([]string{tc.got}, tc.differs...) {
				if !idRE.MatchString(id) {
					t.Fatalf("id %q has the wrong form", id)
				}
			}
			for _, d := range tc.differs {
				if d == tc.got {
					t.Fatalf("collision: %s", d)
				}
			}
		})
	}
	// Pinned values (checked independently: sha256 of the zero-separated
	// parts): a change of the scheme would change every id in flight.
	for got, want := range map[string]string{
		FiringAlertID("inc_x"): "alrt_ed364653b45cb63406f96b51f09f9482",
		IncidentID("acme", "rul_1", "grp_x", time.UnixMilli(1_700_000_000_000)): "inc_7ebbbbb258edf9faca92d38a47209216",
		GroupKey("acme", "rul_1", []string{"nightly-etl"}):                      "grp_a1189c73d2650067b4f99abdd1d66664",
	} {
		if got != want {
			t.Fatalf("id = %s, want %s", got, want)
		}
	}
}
