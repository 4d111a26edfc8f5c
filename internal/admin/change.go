package admin

// The queue changes of an incident (`postern queue delete|hold|release|
// retry|flush`), by id, by filter or for every message:
//
//	POST /queue/delete   stop delivering: no bounce is sent
//	POST /queue/hold     hold: nothing is tried until released
//	POST /queue/release  deliver what is held, now
//	POST /queue/retry    try what is deferred, now
//
// The body is a Selection, the answer a ChangeResult (200); a selection
// with an id that is not a queue id (smtp.ValidID) is refused whole
// (400), nothing changed. A Selection
// names messages by id, picks recipients with a Filter (evaluated here,
// on the server), or takes them all; ids and a filter together pick the
// recipients of those messages that the filter picks. Each change
// applies only where it can: delete to recipients not yet final, hold
// to pending and deferred ones, release to held ones, retry to deferred
// ones. Recipients the filter does not pick are untouched: `delete
// --domain down.example` leaves a message's recipients at other domains
// to be delivered.
//
// Each message changes at once (spool.Spool.Change): a delivery outcome
// never lands in the middle, and a crash leaves it before or after. A
// recipient being delivered when it is deleted or held (Filter's
// "active"): its attempt is not interrupted (a remote server may have
// the message already) and its outcome changes nothing: a deleted
// recipient stays removed and is not bounced, a held one stays held.
// ChangeResult.Active counts them, so that the operator knows a copy may
// still arrive.
//
// With DryRun nothing changes: the answer says what would. `postern
// queue` asks first, and confirms with the operator, when more than a
// few messages would change; it then sends the ids of the dry run with
// the filter, so that what changes is at most what was confirmed
// (messages that came in meanwhile are not).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
)

// Selection names the messages and recipients a change applies to.
type Selection struct {
	// IDs names messages; empty means every message (with All or a
	// Filter).
	IDs []string `json:"ids,omitempty"`
	// Filter picks recipients (of the messages IDs names, when set).
	Filter Filter `json:"filter,omitzero"`
	// All takes every message; it excludes IDs and Filter, and is
	// required when neither is set (an empty Selection is refused).
	All bool `json:"all,omitempty"`
	// DryRun asks what the change would do, without changing anything.
	DryRun bool `json:"dry_run,omitempty"`
}

// ChangeResult is what a change did, or for a dry run would do.
type ChangeResult struct {
	// Messages and Recipients count the messages and recipients changed.
	Messages   int `json:"messages"`
	Recipients int `json:"recipients"`
	// IDs are the messages changed, by arrival.
	IDs []string `json:"ids"`
	// Active counts the recipients changed that were being delivered at
	// that moment: their attempts go on (see above).
	Active int `json:"active"`
	// Missing are the ids of Selection.IDs not in the queue (delivered,
	// deleted, or never there).
	Missing []string `json:"missing,omitempty"`
	// Unchanged are the ids of Selection.IDs in the queue that the
	// change left as they were: nothing in them it applies to (a
	// release of a message not held), or nothing the filter picks.
	Unchanged []string `json:"unchanged,omitempty"`
}

// maxSelection bounds the body of a change: room for about 500,000 ids.
const maxSelection = 16 << 20

// changeTimeout bounds a change made through the Client: a change of
// every message in a large queue commits its states in batches, which
// takes seconds, not the default 30 s.
const changeTimeout = 5 * time.Minute

// changeRoutes registers the changes (see above), and cat (cat.go).
func (s *Server) changeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /queue/{id}/message", s.cat)
	for _, op := range []spool.Op{spool.OpDelete, spool.OpHold, spool.OpRelease, spool.OpRetry} {
		mux.HandleFunc("POST /queue/"+op.String(), func(w http.ResponseWriter, r *http.Request) { s.change(w, r, op) })
	}
}

// Check reports what is wrong with the way sel names messages: --all
// with ids or a filter, or nothing named. A command checks it before it
// asks the server, which checks it again.
func (sel Selection) Check() error {
	switch {
	case sel.All && (len(sel.IDs) > 0 || !sel.Filter.Empty()):
		return errors.New("--all takes every message: it goes with no id and no filter")
	case !sel.All && len(sel.IDs) == 0 && sel.Filter.Empty():
		return errors.New("name the messages: by id, by a filter (--from, --to, --domain, --state), or --all")
	}
	return nil
}

// check returns the matcher of sel's filter, or what is wrong with sel.
func (sel Selection) check() (*matcher, error) {
	if err := sel.Check(); err != nil {
		return nil, err
	}
	for _, id := range sel.IDs {
		if !smtp.ValidID(id) {
			return nil, fmt.Errorf("%q is not a queue id (letters and digits)", id)
		}
	}
	return sel.Filter.compile()
}

func (s *Server) change(w http.ResponseWriter, r *http.Request, op spool.Op) {
	var sel Selection
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSelection))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sel); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{"bad selection: " + err.Error()})
		return
	}
	m, err := sel.check()
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	// A change of a large queue commits its states in batches: more
	// than the admin server's one-minute write timeout allows.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(changeTimeout))
	active := s.activeSet()
	pick := func(id, from, rcpt string, st spool.RecipientState) bool {
		return op.Changes(st.Status) && m.sender(from) && m.recipient(rcpt, rcptState(st, active[id][rcpt]))
	}
	// The candidates, from a snapshot of the queue; Change looks again,
	// message by message.
	var res ChangeResult
	named := make(map[string]bool, len(sel.IDs))
	for _, id := range sel.IDs {
		named[id] = true
	}
	live := make(map[string]bool)
	var ids []string
	var planned []spool.Changed
	for _, it := range s.Spool.List() {
		if len(named) > 0 && !named[it.ID] {
			continue
		}
		live[it.ID] = true
		c := spool.Changed{ID: it.ID}
		for _, rc := range it.Recipients {
			if pick(it.ID, it.From, rc.Addr, rc.State) {
				c.Recipients = append(c.Recipients, rc.Addr)
			}
		}
		if len(c.Recipients) > 0 {
			ids = append(ids, it.ID)
			planned = append(planned, c)
		}
	}
	changed := planned
	if !sel.DryRun && len(ids) > 0 {
		if changed, err = s.Runner.Change(ids, op, pick); err != nil {
			s.log.Error("admin: queue change failed", "op", op.String(), "err", err)
			writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
			return
		}
	}
	done := make(map[string]bool, len(changed))
	for _, c := range changed {
		done[c.ID] = true
		res.Messages++
		res.Recipients += len(c.Recipients)
		res.IDs = append(res.IDs, c.ID)
		for _, rc := range c.Recipients {
			if active[c.ID][rc] {
				res.Active++
			}
		}
		if !sel.DryRun {
			s.log.Info("admin: queue "+op.String(), "id", c.ID, "rcpts", len(c.Recipients), "done", c.Done)
		}
	}
	for _, id := range dedup(sel.IDs) {
		switch {
		case !live[id]:
			res.Missing = append(res.Missing, id)
		case !done[id]:
			res.Unchanged = append(res.Unchanged, id)
		}
	}
	if res.IDs == nil {
		res.IDs = []string{}
	}
	if !sel.DryRun {
		s.log.Info("admin: queue "+op.String()+" done", "messages", res.Messages, "recipients", res.Recipients,
			"active", res.Active, "all", sel.All, "ids", len(sel.IDs), "from", sel.Filter.From, "to", sel.Filter.To,
			"domain", sel.Filter.Domain, "state", sel.Filter.State)
	}
	writeJSON(w, http.StatusOK, res)
}

// activeSet returns the recipients being delivered now, by message id.
func (s *Server) activeSet() map[string]map[string]bool {
	out := make(map[string]map[string]bool)
	for id, rcpts := range s.Runner.Active() {
		out[id] = make(map[string]bool, len(rcpts))
		for _, r := range rcpts {
			out[id][r] = true
		}
	}
	return out
}

// dedup returns ids without repeats, in their order.
func dedup(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		if seen[id] {
			return true
		}
		seen[id] = true
		return false
	})
}

// ErrOldServer means the server does not know the request: it runs an
// older binary than the command.
var ErrOldServer = errors.New("the server runs an older postern than this command: restart it (postern restart) to use this")

// Change makes the change op (delete, hold, release, retry) to the
// messages and recipients sel names, or with sel.DryRun says what it
// would change. It fails wrapping ErrOldServer for a server that does
// not know it, and with a *ServerError for a selection the server
// refuses (a bad filter).
func (c *Client) Change(ctx context.Context, op spool.Op, sel Selection) (*ChangeResult, error) {
	var res ChangeResult
	if err := c.doJSON(ctx, http.MethodPost, "/queue/"+op.String(), sel, &res, changeTimeout); err != nil {
		return nil, fmt.Errorf("admin: %v: %w", op, err)
	}
	return &res, nil
}
