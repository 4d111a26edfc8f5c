package admin

// The detail view of the status page, GET /message/{id}: one message's
// envelope, each recipient's state and last error, the delivery reports
// kept for it, and its header section. The id comes from the URL, so it
// is checked (smtp.ValidID) before it is looked up or shown.

import (
	"errors"
	"net/http"

	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
)

// detailData is what the detail template shows.
type detailData struct {
	MessageDetail
	Age     string
	Reports []queue.Report
}

func (s *Server) messagePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !smtp.ValidID(id) {
		s.badRequest(w, "That is not a queue id: ids are letters and digits.")
		return
	}
	md, err := s.detail(id)
	if errors.Is(err, spool.ErrNotFound) {
		// The id is valid, so it may be shown.
		s.page(w, http.StatusNotFound, errorPage, struct{ Title, Msg string }{"Not found",
			"No message " + id + " in the spool: delivered and removed, deleted, or never here."})
		return
	}
	if err != nil {
		s.log.Error("admin: status: message", "id", id, "err", err)
		s.page(w, http.StatusInternalServerError, errorPage, struct{ Title, Msg string }{"Error",
			"The spool did not answer; the log says why."})
		return
	}
	d := detailData{MessageDetail: md, Age: age(s.now().Sub(md.ReceivedAt))}
	if s.Events != nil {
		for _, rep := range s.Events.Deliveries() {
			if rep.ID == id {
				d.Reports = append(d.Reports, rep)
			}
		}
	}
	s.page(w, http.StatusOK, detailPage, d)
}
