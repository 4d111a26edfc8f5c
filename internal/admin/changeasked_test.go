package admin

import (
	"context"
	"errors"
	"slices"
	"testing"

	"postern/internal/spool"
)

// TestChangeAsked: ask sees the dry run's count; a refusal changes
// nothing; a message that arrives while the operator is asked is not
// changed, though the filter would pick it; what a dry run found
// missing is in the result.
func TestChangeAsked(t *testing.T) {
	f := newFixture(t)
	alice, mallory, _ := incidentQueue(t, f)
	ctx := context.Background()
	held := func(id string) int {
		it, err := f.spool.Lookup(id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		n := 0
		for _, r := range it.Recipients {
			if r.State.Status == spool.StatusHeld {
				n++
			}
		}
		return n
	}
	sel := Selection{Filter: Filter{Domain: "a.example"}}
	no := errors.New("not confirmed")
	if _, err := f.client.ChangeAsked(ctx, spool.OpHold, sel, func(dry *ChangeResult) error {
		if dry.Messages != 2 || dry.Recipients != 2 {
			t.Errorf("dry run: %+v", dry)
		}
		return no
	}); err != no {
		t.Fatalf("refused: %v, want ask's error", err)
	}
	if held(alice)+held(mallory) != 0 {
		t.Fatal("a refused change held recipients")
	}

	late := "a0000000000000000009"
	res, err := f.client.ChangeAsked(ctx, spool.OpHold, sel, func(*ChangeResult) error {
		f.put(t, late, "zed@example.com", "z@a.example") // arrives while the operator reads the question
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 2 || !slices.Equal(res.IDs, []string{alice, mallory}) || held(alice) != 1 || held(mallory) != 1 {
		t.Errorf("hold: %+v; held %d, %d", res, held(alice), held(mallory))
	}
	if held(late) != 0 {
		t.Errorf("the message that arrived after the count was held")
	}

	res, err = f.client.ChangeAsked(ctx, spool.OpRelease, Selection{IDs: []string{alice, "nosuchid"}}, func(*ChangeResult) error { return nil })
	if err != nil || res.Messages != 1 || !slices.Equal(res.Missing, []string{"nosuchid"}) {
		t.Errorf("release by id: %+v, %v", res, err)
	}
}

// TestSelectionCheck: a selection names messages one way.
func TestSelectionCheck(t *testing.T) {
	for sel, ok := range map[*Selection]bool{
		{}: false, {All: true}: true, {IDs: []string{"a1"}}: true, {Filter: Filter{To: "a@x"}}: true,
		{All: true, IDs: []string{"a1"}}: false, {All: true, Filter: Filter{State: "held"}}: false,
	} {
		if err := sel.Check(); (err == nil) != ok {
			t.Errorf("%+v: %v", *sel, err)
		}
	}
}
