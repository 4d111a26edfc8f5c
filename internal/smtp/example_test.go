package smtp_test

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"postern/internal/smtp"
)

func ExampleWriteReply() {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	smtp.WriteReply(w, 250, "", "mx.example.org", "PIPELINING", "SIZE 36700160")
	smtp.WriteReply(w, 550, "5.7.1", "Relaying denied")
	w.Flush()
	for _, line := range strings.SplitAfter(out.String(), "\r\n") {
		if line != "" {
			fmt.Printf("%q\n", line)
		}
	}
	// Output:
	// "250-mx.example.org\r\n"
	// "250-PIPELINING\r\n"
	// "250 SIZE 36700160\r\n"
	// "550 5.7.1 Relaying denied\r\n"
}

func ExampleReadData() {
	in := "Subject: hi\r\n\r\n..a line with a dot\r\n.\r\nQUIT\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	var msg bytes.Buffer
	err := smtp.ReadData(br, &msg, smtp.DataLimits{MaxSize: 1 << 20})
	fmt.Printf("%q %v\n", msg.String(), err)

	r := smtp.NewReader(br)
	line, err := r.ReadLine(smtp.MaxCommandLine)
	fmt.Printf("%q %v\n", line, err)
	// Output:
	// "Subject: hi\r\n\r\n.a line with a dot\r\n" <nil>
	// "QUIT" <nil>
}

func ExampleParseMailFrom() {
	path, params, err := smtp.ParseMailFrom("FROM:<Jane.Doe@Example.COM> SIZE=1024 BODY=8BITMIME", true)
	fmt.Println(path.Addr, params["SIZE"], params["BODY"], err)
	_, _, err = smtp.ParseMailFrom("FROM:jane@example.com", true)
	fmt.Println(err)
	// Output:
	// Jane.Doe@example.com 1024 8BITMIME <nil>
	// 501 5.5.4 Syntax: MAIL FROM:<address> [parameters]
}
