package smtp

// Command is one parsed command line.
type Command struct {
	Verb string // upper-cased verb, e.g. "MAIL", "STARTTLS"
	Arg  string // everything after the single space that follows the verb, as sent; "" when none
}

// maxVerb is the longest verb ParseCommand accepts.
const maxVerb = 16

// ParseCommand splits a command line (without CRLF) into verb and argument
// (RFC 5321 §4.1.1: the verb is followed by a space or the end of line).
// The verb is 1 to 16 ASCII letters, matched case-insensitively and
// returned upper-cased; anything else (an empty line, a digit or other
// character in the verb, a verb followed by anything but a space) returns
// a 500 5.5.2 *Error. The argument is not checked here: the parser for the
// verb does that.
func ParseCommand(line []byte) (Command, error) {
	var up [maxVerb]byte
	i := 0
	for ; i < len(line) && line[i] != ' '; i++ {
		c := line[i]
		switch {
		case 'A' <= c && c <= 'Z':
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		default:
			return Command{}, badCommand()
		}
		if i == maxVerb {
			return Command{}, badCommand()
		}
		up[i] = c
	}
	if i == 0 {
		return Command{}, badCommand()
	}
	cmd := Command{Verb: verbString(up[:i])}
	if i < len(line) {
		cmd.Arg = string(line[i+1:])
	}
	return cmd, nil
}

// badCommand returns the reply to a line that is not a command
// (RFC 5321 §4.2.4), a new value each time so callers may change it.
func badCommand() *Error {
	return &Error{Code: 500, Enhanced: "5.5.2", Message: "Syntax error, command unrecognized"}
}

// verbString returns up as a string, without allocating for the verbs of
// RFC 5321 and its common extensions.
func verbString(up []byte) string {
	switch string(up) { // no allocation: the compiler compares in place
	case "EHLO":
		return "EHLO"
	case "HELO":
		return "HELO"
	case "MAIL":
		return "MAIL"
	case "RCPT":
		return "RCPT"
	case "DATA":
		return "DATA"
	case "BDAT":
		return "BDAT"
	case "RSET":
		return "RSET"
	case "NOOP":
		return "NOOP"
	case "QUIT":
		return "QUIT"
	case "VRFY":
		return "VRFY"
	case "EXPN":
		return "EXPN"
	case "HELP":
		return "HELP"
	case "STARTTLS":
		return "STARTTLS"
	case "AUTH":
		return "AUTH"
	case "LHLO":
		return "LHLO"
	}
	return string(up)
}
