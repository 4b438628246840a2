// Command pion_peer is the Pion (github.com/pion/webrtc/v3, Debian's
// golang-github-pion-webrtc.v3-dev) implementation of the `rtcmesh connect`
// interop protocol. See tests/interop/aiortc_peer.py for the protocol; this
// peer takes the same flags (no --selftest: the driver, pair.py, does the
// checking and this side echoes):
//
//	pion_peer [connect] (--offer|--answer) [--label L] [--protocol P] [--unordered]
//	          [--max-retransmits N | --max-packet-life-time MS] [--negotiated-id N]
//	          [--echo] [--ice-server URL]... [--ice-username U] [--ice-credential C]
//	          [--relay-only] [--loopback] [--timeout S]
//
// Non-trickle: the description is printed once ICE gathering is complete.
// --loopback gathers UDP over IPv4 on 127.0.0.1 only, with mDNS off. No ICE
// server is ever used unless --ice-server names one.
//
// Built offline in GOPATH mode by build.sh in this folder.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v3"
)

const name = "pion-peer"

var (
	stdoutMu sync.Mutex
	stdout   = bufio.NewWriterSize(os.Stdout, 1<<16)
)

func logf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
}

func status(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "rtcmesh: "+format+"\n", args...)
}

func outLine(data []byte) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	stdout.Write(data)
	stdout.WriteByte('\n')
	stdout.Flush()
}

// ------------------------------------------------------------------ arguments

type options struct {
	offer, answer     bool
	label, protocol   string
	unordered         bool
	maxRetransmits    *uint16
	maxPacketLifeTime *uint16
	negotiatedID      *uint16
	echo              bool
	iceServers        []string
	iceUsername       string
	iceCredential     string
	relayOnly         bool
	loopback          bool
	timeout           time.Duration
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "%s: %s\nusage: pion_peer [connect] (--offer|--answer) [--label L] [--protocol P] "+
		"[--unordered] [--max-retransmits N|--max-packet-life-time MS] [--negotiated-id N] [--echo] "+
		"[--ice-server URL]... [--ice-username U] [--ice-credential C] [--relay-only] [--loopback] "+
		"[--timeout S]\n", name, msg)
	os.Exit(2)
}

func parseArgs(argv []string) options {
	o := options{label: "data", timeout: 30 * time.Second}
	value := func(i *int, flag string) string {
		*i++
		if *i >= len(argv) {
			usage(flag + " needs a value")
		}
		return argv[*i]
	}
	u16 := func(i *int, flag string) *uint16 {
		v, err := strconv.ParseUint(value(i, flag), 10, 16)
		if err != nil {
			usage(flag + " needs an integer in 0..65535")
		}
		x := uint16(v)
		return &x
	}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		// --flag=value is accepted too
		if strings.HasPrefix(a, "--") && strings.Contains(a, "=") {
			k, v, _ := strings.Cut(a, "=")
			argv = append(argv[:i], append([]string{k, v}, argv[i+1:]...)...)
			a = k
		}
		switch a {
		case "connect":
			if i != 0 {
				usage(`unexpected "connect"`)
			}
		case "--offer", "--answer":
			if o.offer || o.answer {
				usage("give only one of --offer / --answer")
			}
			o.offer, o.answer = a == "--offer", a == "--answer"
		case "--label":
			o.label = value(&i, a)
		case "--protocol":
			o.protocol = value(&i, a)
		case "--unordered":
			o.unordered = true
		case "--max-retransmits":
			o.maxRetransmits = u16(&i, a)
		case "--max-packet-life-time":
			o.maxPacketLifeTime = u16(&i, a)
		case "--negotiated-id":
			o.negotiatedID = u16(&i, a)
			if *o.negotiatedID > 65534 {
				usage("--negotiated-id must be at most 65534")
			}
		case "--echo":
			o.echo = true
		case "--ice-server":
			o.iceServers = append(o.iceServers, value(&i, a))
		case "--ice-username":
			o.iceUsername = value(&i, a)
		case "--ice-credential":
			o.iceCredential = value(&i, a)
		case "--relay-only":
			o.relayOnly = true
		case "--loopback":
			o.loopback = true
		case "--timeout":
			s, err := strconv.ParseFloat(value(&i, a), 64)
			if err != nil || s <= 0 {
				usage("--timeout needs a positive number of seconds")
			}
			o.timeout = time.Duration(s * float64(time.Second))
		default:
			usage("unknown argument " + strconv.Quote(a))
		}
	}
	if !o.offer && !o.answer {
		usage("give --offer or --answer")
	}
	if o.maxRetransmits != nil && o.maxPacketLifeTime != nil {
		usage("give only one of --max-retransmits / --max-packet-life-time")
	}
	return o
}

var iceURL = regexp.MustCompile(`^(stuns?|turns?):(?:([^:@]*):([^@]*)@)?(.+)$`)

// stun:host[:port] or turn[s]:[user:pass@]host[:port][?transport=udp|tcp]
func parseICEServer(url, username, credential string) (webrtc.ICEServer, error) {
	m := iceURL.FindStringSubmatch(url)
	if m == nil {
		return webrtc.ICEServer{}, fmt.Errorf("bad --ice-server URL: %s", url)
	}
	scheme, user, pass, rest := m[1], m[2], m[3], m[4]
	if strings.Contains(url, "@") {
		return webrtc.ICEServer{URLs: []string{scheme + ":" + rest}, Username: user, Credential: pass}, nil
	}
	if strings.HasPrefix(scheme, "turn") {
		return webrtc.ICEServer{URLs: []string{url}, Username: username, Credential: credential}, nil
	}
	return webrtc.ICEServer{URLs: []string{url}}, nil
}

// ------------------------------------------------------------------ stdin

// readStdin sends each stdin line (without its line ending) and closes the
// channel at end of input. Lines of any length (bufio.Reader, not Scanner).
func readStdin(lines chan<- []byte) {
	r := bufio.NewReaderSize(os.Stdin, 1<<16)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && (err == nil || err == io.EOF) {
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			lines <- line
		}
		if err != nil {
			close(lines)
			return
		}
	}
}

type description struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

func readDescription(lines <-chan []byte, want string, timeout time.Duration, stop <-chan os.Signal) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("end of stdin before the %s line", want)
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var d description
			if err := json.Unmarshal(line, &d); err != nil {
				return "", fmt.Errorf("bad %s line (not JSON: %v)", want, err)
			}
			if d.Type != want || d.SDP == "" {
				return "", fmt.Errorf(`bad %s line: expected {"type":"%s","sdp":...}`, want, want)
			}
			return d.SDP, nil
		case <-deadline:
			return "", fmt.Errorf("timed out waiting for the %s line on stdin", want)
		case <-stop:
			return "", errInterrupted
		}
	}
}

var errInterrupted = errors.New("interrupted")

func printDescription(d *webrtc.SessionDescription) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(description{Type: d.Type.String(), SDP: d.SDP})
	outLine(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// ------------------------------------------------------------------ main

func newAPI(o options) *webrtc.API {
	var s webrtc.SettingEngine
	// Pion's log levels come from PION_LOG_<LEVEL>=scope,... (e.g.
	// PION_LOG_TRACE=dtls,sctp); its default writer is stdout, which carries
	// the protocol here: send the log to stderr.
	logs := logging.NewDefaultLoggerFactory()
	logs.Writer = os.Stderr
	s.LoggerFactory = logs
	if o.loopback {
		s.SetIncludeLoopbackCandidate(true)
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		s.SetInterfaceFilter(func(ifname string) bool {
			ifi, err := net.InterfaceByName(ifname)
			return err == nil && ifi.Flags&net.FlagLoopback != 0
		})
		s.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
		s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(s))
}

func channelInit(o options) *webrtc.DataChannelInit {
	ordered := !o.unordered
	init := &webrtc.DataChannelInit{
		Ordered:           &ordered,
		MaxRetransmits:    o.maxRetransmits,
		MaxPacketLifeTime: o.maxPacketLifeTime,
	}
	if o.protocol != "" {
		p := o.protocol
		init.Protocol = &p
	}
	if o.negotiatedID != nil {
		yes := true
		init.Negotiated = &yes
		init.ID = o.negotiatedID
	}
	return init
}

func run(o options) int {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	lines := make(chan []byte, 1024)
	go readStdin(lines)

	config := webrtc.Configuration{}
	for _, u := range o.iceServers {
		server, err := parseICEServer(u, o.iceUsername, o.iceCredential)
		if err != nil {
			logf("error: %v", err)
			return 1
		}
		config.ICEServers = append(config.ICEServers, server)
	}
	if o.relayOnly {
		config.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := newAPI(o).NewPeerConnection(config)
	if err != nil {
		logf("error: %v", err)
		return 1
	}
	// Every way out closes the connection (bounded: a stuck close must not
	// keep the process alive).
	defer closeConnection(pc)

	opened := make(chan struct{})
	closed := make(chan struct{})
	failed := make(chan struct{})
	var openOnce, closeOnce, failOnce sync.Once
	var chMu sync.Mutex
	var channel *webrtc.DataChannel

	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		logf("connection state %s", s)
		if s == webrtc.PeerConnectionStateFailed {
			failOnce.Do(func() { close(failed) })
		}
	})

	attach := func(dc *webrtc.DataChannel) {
		chMu.Lock()
		if channel != nil {
			chMu.Unlock()
			logf("ignoring extra data channel %q", dc.Label())
			return
		}
		channel = dc
		chMu.Unlock()
		dc.OnOpen(func() { openOnce.Do(func() { close(opened) }) })
		dc.OnClose(func() { closeOnce.Do(func() { close(closed) }) })
		dc.OnError(func(err error) { logf("data channel error: %v", err) })
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if o.echo && dc.ReadyState() == webrtc.DataChannelStateOpen {
				var err error
				if m.IsString {
					err = dc.SendText(string(m.Data))
				} else {
					err = dc.Send(m.Data)
				}
				if err != nil {
					logf("echo failed: %v", err)
				}
			}
			if m.IsString {
				outLine(m.Data)
			} else {
				outLine([]byte("binary:" + base64.StdEncoding.EncodeToString(m.Data)))
			}
		})
		if dc.ReadyState() == webrtc.DataChannelStateOpen {
			openOnce.Do(func() { close(opened) })
		}
	}
	makeChannel := func() error {
		dc, err := pc.CreateDataChannel(o.label, channelInit(o))
		if err != nil {
			return err
		}
		attach(dc)
		return nil
	}

	if o.answer && o.negotiatedID == nil {
		pc.OnDataChannel(attach)
	}

	signalling := func() error {
		t0 := time.Now()
		if o.offer {
			if err := makeChannel(); err != nil {
				return err
			}
			offer, err := pc.CreateOffer(nil)
			if err != nil {
				return err
			}
			gathered := webrtc.GatheringCompletePromise(pc)
			if err := pc.SetLocalDescription(offer); err != nil {
				return err
			}
			<-gathered
			printDescription(pc.LocalDescription())
			logf("offer printed after %.3fs", time.Since(t0).Seconds())
			sdp, err := readDescription(lines, "answer", o.timeout, stop)
			if err != nil {
				return err
			}
			return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
		}
		sdp, err := readDescription(lines, "offer", o.timeout, stop)
		if err != nil {
			return err
		}
		t0 = time.Now()
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			return err
		}
		if o.negotiatedID != nil {
			if err := makeChannel(); err != nil {
				return err
			}
		}
		answer, err := pc.CreateAnswer(nil)
		if err != nil {
			return err
		}
		gathered := webrtc.GatheringCompletePromise(pc)
		if err := pc.SetLocalDescription(answer); err != nil {
			return err
		}
		<-gathered
		printDescription(pc.LocalDescription())
		logf("answer printed after %.3fs", time.Since(t0).Seconds())
		return nil
	}
	if err := signalling(); err != nil {
		if errors.Is(err, errInterrupted) {
			logf("interrupted before the channel opened")
			return 0
		}
		logf("error: %v", err)
		return 1
	}

	select {
	case <-opened:
	case <-failed:
		logf("error: connection failed before the channel opened")
		return 1
	case <-stop:
		logf("interrupted before the channel opened")
		return 0
	case <-time.After(o.timeout):
		logf("error: timed out waiting for the channel to open")
		return 1
	}
	chMu.Lock()
	dc := channel
	chMu.Unlock()
	id := -1
	if dc.ID() != nil {
		id = int(*dc.ID())
	}
	status("channel open label=%s id=%d", dc.Label(), id)

	exitCode := 0
	localClose := false
loop:
	for {
		select {
		case <-closed:
			break loop
		case <-failed:
			logf("error: connection failed")
			exitCode = 1
			break loop
		case <-stop:
			localClose = true
			break loop
		case line, ok := <-lines:
			if !ok {
				localClose = true
				break loop
			}
			if dc.ReadyState() != webrtc.DataChannelStateOpen {
				continue
			}
			if bytes.HasPrefix(line, []byte("binary:")) {
				data, err := base64.StdEncoding.Strict().DecodeString(string(line[7:]))
				if err != nil {
					logf("error: bad base64 after 'binary:' on stdin, line ignored")
					continue
				}
				err = dc.Send(data)
				if err != nil {
					logf("send failed: %v", err)
				}
			} else if err := dc.SendText(string(line)); err != nil {
				logf("send failed: %v", err)
			}
		}
	}

	if localClose && dc.ReadyState() == webrtc.DataChannelStateOpen {
		drain(dc, 10*time.Second)
		if err := dc.Close(); err != nil {
			logf("warning: closing the channel: %v", err)
		}
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			// read by pair.py, which fails the pair on any 'interop-check:' line
			fmt.Fprintln(os.Stderr, "interop-check: our channel close was not completed within 5 s: "+
				"the remote did not answer our stream reset")
		}
	}
	status("channel closed")
	return exitCode
}

var pcCloseOnce sync.Once

func closeConnection(pc *webrtc.PeerConnection) {
	pcCloseOnce.Do(func() {
		done := make(chan struct{})
		t0 := time.Now()
		go func() {
			if err := pc.Close(); err != nil {
				logf("warning: closing the connection: %v", err)
			}
			logf("connection closed after %.3fs", time.Since(t0).Seconds())
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			logf("warning: closing the connection took more than 5 s")
		}
	})
}

// drain waits until what was queued on the channel has been handed to SCTP
// and acknowledged (best effort).
func drain(dc *webrtc.DataChannel, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && dc.ReadyState() == webrtc.DataChannelStateOpen {
		if dc.BufferedAmount() == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func main() {
	o := parseArgs(os.Args[1:])
	code := run(o)
	stdoutMu.Lock()
	stdout.Flush()
	stdoutMu.Unlock()
	os.Exit(code)
}
