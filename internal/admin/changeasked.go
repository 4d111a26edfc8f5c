package admin

// A queue change that is confirmed first: what `postern queue delete`
// and hold do for a change of more than a few messages.

import (
	"context"
	"fmt"

	"postern/internal/spool"
)

// ChangeAsked makes the change op to sel once ask approves it: a dry
// run counts what the change would do, ask sees that count and may
// refuse (its error is returned and nothing changes); the change then
// names the messages the dry run counted, with sel's filter, so that
// mail arriving meanwhile is not changed unasked. The result holds the
// dry run's Missing and Unchanged too. When the dry run counts no
// message, nothing more is asked of the server.
func (c *Client) ChangeAsked(ctx context.Context, op spool.Op, sel Selection, ask func(dry *ChangeResult) error) (*ChangeResult, error) {
	dry := sel
	dry.DryRun = true
	planned, err := c.Change(ctx, op, dry)
	if err != nil {
		return nil, err
	}
	if err := ask(planned); err != nil {
		return nil, err
	}
	if planned.Messages > len(planned.IDs) {
		// Without the ids the change would go by the filter alone and
		// could reach mail that arrived after the question.
		return nil, fmt.Errorf("admin: the dry run counted %d messages but named %d", planned.Messages, len(planned.IDs))
	}
	res := &ChangeResult{}
	if planned.Messages > 0 {
		// What was counted, no more: the same filter on those messages.
		if res, err = c.Change(ctx, op, Selection{IDs: planned.IDs, Filter: sel.Filter}); err != nil {
			return nil, err
		}
	}
	res.Missing = append(planned.Missing, res.Missing...)
	res.Unchanged = append(planned.Unchanged, res.Unchanged...)
	return res, nil
}
