// rtcmesh-hubload: load generator for WebRTC signaling servers (the rtcmesh hub, the
// y-webrtc signaling server, the PeerJS server). One thread, one epoll set, edge-triggered
// non-blocking sockets and its own RFC 6455 client framing, so that a connection costs the
// generator ~200 bytes and the server under test is what runs out of CPU first.
//
// Scenarios (see bench/README.md, "Hub benchmark"):
//   idle     open N connections, join/subscribe/OPEN each, hold them, report the server's
//            RSS growth per connection;
//   forward  P pairs, k exchanges in flight per pair, each a closed loop
//            offer -> answer -> candidate x4 alternating direction; forwarded msgs/s and
//            one-way latency percentiles per level;
//   churn    C clients in a loop: connect, WebSocket handshake, join, close; joins/s.
// One JSON object on stdout, progress on stderr.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

double seconds_since(uint64_t t0) {
  return static_cast<double>(now_ns() - t0) / 1e9;
}

// xorshift64*: masking keys and handshake nonces only need to differ, not to be secret.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed | 1) {}
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1DULL;
  }

 private:
  uint64_t s_;
};

enum class Server { rtcmesh, ywebrtc, peerjs };

const char* server_name(Server s) {
  switch (s) {
    case Server::rtcmesh:
      return "rtcmesh";
    case Server::ywebrtc:
      return "y-webrtc";
    case Server::peerjs:
      return "peerjs";
  }
  return "?";
}

struct Level {
  uint32_t pairs = 0;
  uint32_t inflight = 0;
};

struct Config {
  Server server = Server::rtcmesh;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string path;  // empty: the server's default
  std::string scenario;
  uint32_t connections = 1000;
  std::vector<Level> levels{{1, 4}, {10, 4}, {100, 4}, {1000, 4}};
  double duration = 3.0;
  double warmup = 0.5;
  double hold = 2.0;
  double timeout = 180.0;
  uint32_t concurrency = 64;
  uint32_t parallel_connects = 256;
  uint32_t sources = 8;
  int server_pid = 0;
  uint64_t id_base = 0;  // distinct peer ids across invocations against one server
};

// ---------------------------------------------------------------------------------------
// /proc readings

long read_rss_kb(int pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kb = std::strtol(line + 6, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb;
}

// utime + stime of a whole process (all threads), in seconds.
double read_cpu_seconds(int pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // The command name may hold spaces and parentheses: fields restart after the last ')'.
  char* p = std::strrchr(buf, ')');
  if (!p) return -1;
  unsigned long utime = 0, stime = 0;
  // fields 3..13 skipped, 14 utime, 15 stime
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) !=
      2)
    return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---------------------------------------------------------------------------------------
// WebSocket client framing (RFC 6455 section 5): every client frame is masked.

void append_frame(std::string& out, uint8_t opcode, std::string_view payload, uint32_t mask) {
  const size_t n = payload.size();
  uint8_t hdr[14];
  size_t h = 0;
  hdr[h++] = static_cast<uint8_t>(0x80 | opcode);
  if (n < 126) {
    hdr[h++] = static_cast<uint8_t>(0x80 | n);
  } else if (n < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = static_cast<uint8_t>(n >> 8);
    hdr[h++] = static_cast<uint8_t>(n);
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; --i)
      hdr[h++] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (8 * i));
  }
  std::memcpy(hdr + h, &mask, 4);
  h += 4;
  const size_t base = out.size();
  out.append(reinterpret_cast<const char*>(hdr), h);
  out.append(payload);
  auto* p = reinterpret_cast<uint8_t*>(out.data()) + base + h;
  // Key bytes are applied in their wire order; 8 at a time keeps i % 4 aligned.
  const uint64_t m64 = static_cast<uint64_t>(mask) | (static_cast<uint64_t>(mask) << 32);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m64;
    std::memcpy(p + i, &v, 8);
  }
  uint8_t mb[4];
  std::memcpy(mb, &mask, 4);
  for (; i < n; ++i) p[i] ^= mb[i & 3];
}

struct Frame {
  bool fin = false;
  uint8_t opcode = 0;
  char* payload = nullptr;
  size_t size = 0;
};

constexpr size_t kMaxMessage = 16u << 20;

// Returns bytes consumed (0: incomplete), or SIZE_MAX on a protocol error.
size_t parse_frame(char* data, size_t n, Frame& f) {
  if (n < 2) return 0;
  auto* p = reinterpret_cast<uint8_t*>(data);
  f.fin = (p[0] & 0x80) != 0;
  f.opcode = p[0] & 0x0f;
  const bool masked = (p[1] & 0x80) != 0;
  uint64_t len = p[1] & 0x7f;
  size_t h = 2;
  if (len == 126) {
    if (n < 4) return 0;
    len = (static_cast<uint64_t>(p[2]) << 8) | p[3];
    h = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    h = 10;
  }
  if (len > kMaxMessage) return SIZE_MAX;
  uint8_t key[4] = {0, 0, 0, 0};
  if (masked) {
    if (n < h + 4) return 0;
    std::memcpy(key, p + h, 4);
    h += 4;
  }
  if (n < h + len) return 0;
  if (masked)
    for (size_t i = 0; i < len; ++i) p[h + i] ^= key[i & 3];
  f.payload = data + h;
  f.size = static_cast<size_t>(len);
  return h + static_cast<size_t>(len);
}

std::string base64(const uint8_t* d, size_t n) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(d[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(d[i + 1]) << 8;
    if (i + 2 < n) v |= d[i + 2];
    s += t[(v >> 18) & 63];
    s += t[(v >> 12) & 63];
    s += i + 1 < n ? t[(v >> 6) & 63] : '=';
    s += i + 2 < n ? t[v & 63] : '=';
  }
  return s;
}

// The value of the first "type" member: the top-level one in every message we look at
// (nested objects we send carry no "type" before it, and servers keep member order or put
// "type" first).
std::string_view json_type(std::string_view m) {
  size_t k = m.find("\"type\"");
  if (k == std::string_view::npos) return {};
  k += 6;
  while (k < m.size() && (m[k] == ' ' || m[k] == ':' || m[k] == '\t')) ++k;
  if (k >= m.size() || m[k] != '"') return {};
  size_t e = m.find('"', k + 1);
  if (e == std::string_view::npos) return {};
  return m.substr(k + 1, e - k - 1);
}

// ---------------------------------------------------------------------------------------
// Payloads: a data-channel-only SDP (~600 bytes) and a host candidate (~150 bytes), what a
// browser sends. They never contain the tag "Qz" that marks our bench messages.

const std::string& sdp_json() {
  static const std::string s = [] {
    const char* lines[] = {
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:fX3k",
        "a=ice-pwd:m2b9VtJ0hWcL8yP4rN6sD1aE",
        "a=ice-options:trickle",
        ("a=fingerprint:sha-256 7B:8A:31:C2:5E:90:1D:AF:64:0B:E3:72:19:D8:4C:A6:F1:23:9E:5B:07:C8:"
         "3A:D4:61:BE:2F:95:48:E0:7C:13"),
        "a=setup:actpass",
        "a=mid:0",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        "a=candidate:842163049 1 udp 2122260223 127.0.0.1 54321 typ host generation 0 network-id 1",
        "a=end-of-candidates",
    };
    std::string out;
    for (const char* l : lines) {
      out += l;
      out += "\\r\\n";
    }
    return out;
  }();
  return s;
}

const char* kCandidateJson =
    R"({"candidate":"candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ host generation 0 ufrag fX3k network-id 1","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"fX3k"})";

// Exchange: offer A->B, answer B->A, then four candidates alternating A->B, B->A, ...
// Step s is sent by role s % 2 (0 = A, 1 = B).
constexpr uint8_t kSteps = 6;

// Bench messages carry "Qz<7-digit slot>_<step>" in their session/connection id.
void append_tag(std::string& s, uint32_t slot, uint8_t step) {
  char t[24];
  std::snprintf(t, sizeof t, "Qz%07u_%u", slot, static_cast<unsigned>(step));
  s += t;
}

bool find_tag(std::string_view m, uint32_t& slot, uint8_t& step) {
  size_t k = m.find("Qz");
  if (k == std::string_view::npos || k + 11 > m.size()) return false;
  uint32_t v = 0;
  for (size_t i = k + 2; i < k + 9; ++i) {
    if (m[i] < '0' || m[i] > '9') return false;
    v = v * 10 + static_cast<uint32_t>(m[i] - '0');
  }
  if (m[k + 9] != '_' || m[k + 10] < '0' || m[k + 10] > '9') return false;
  slot = v;
  step = static_cast<uint8_t>(m[k + 10] - '0');
  return true;
}

// ---------------------------------------------------------------------------------------
// Connections and the event loop

enum class St : uint8_t { unused, connecting, handshake, joining, ready, closed };

struct Conn {
  int fd = -1;
  uint32_t gen = 0;
  St st = St::unused;
  uint8_t role = 0;
  bool dirty = false;
  uint32_t partner = 0;  // index of the other side of the pair
  uint64_t id = 0;       // peer id = "p<id>"
  uint64_t room = 0;     // room/topic = "r<room>"
  uint64_t t_start = 0;  // connect() time
  std::string in;
  std::string out;
  std::string frag;
  uint8_t frag_op = 0;
};

class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual void on_ready(uint32_t /*i*/) {}
  virtual void on_text(uint32_t /*i*/, std::string_view /*m*/) {}
};

class Engine {
 public:
  explicit Engine(const Config& cfg) : cfg_(cfg), rng_(now_ns()) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) die("epoll_create1");
    buf_.resize(256 * 1024);
    switch (cfg_.server) {
      case Server::rtcmesh:
        default_path_ = "/signaling";
        break;
      case Server::ywebrtc:
        default_path_ = "/";
        break;
      case Server::peerjs:
        default_path_ = "/peerjs";
        break;
    }
    if (!cfg_.path.empty()) default_path_ = cfg_.path;
    if (inet_pton(AF_INET, cfg_.host.c_str(), &dst_.sin_addr) != 1) die("bad --host");
    dst_.sin_family = AF_INET;
    dst_.sin_port = htons(cfg_.port);
  }
  ~Engine() {
    close_all();
    ::close(ep_);
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  [[noreturn]] static void die(const char* what) {
    std::fprintf(stderr, "rtcmesh-hubload: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
  }

  std::vector<Conn> conns;
  Scenario* scenario = nullptr;

  uint64_t ready_count = 0;
  uint64_t failures = 0;
  uint64_t errors = 0;  // error messages from the server after joining
  std::string first_failure;
  std::string first_error;

  uint64_t next_id() { return ++id_counter_; }
  void set_id_base(uint64_t b) { id_counter_ = b; }

  // Prepare conns[0..n) with fresh ids; pairs share a room. Nothing is opened yet.
  void reset(uint32_t n) {
    close_all();
    conns.clear();
    conns.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
      Conn& c = conns[i];
      c.id = next_id();
      c.role = static_cast<uint8_t>(i & 1);
      c.partner = i ^ 1;
      c.room = c.id - c.role;  // both members of a pair: the first one's id
    }
    ready_count = failures = errors = 0;
    first_failure.clear();
    first_error.clear();
    queue_.clear();
    queue_pos_ = 0;
    opening_ = 0;
  }

  // Open every connection in conns, at most parallel_connects handshakes at a time.
  void open_all() {
    for (uint32_t i = 0; i < conns.size(); ++i) queue_.push_back(i);
    pump_queue();
  }

  void open(uint32_t i) {
    Conn& c = conns[i];
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      fail(i, std::string("socket: ") + std::strerror(errno));
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg_.sources > 0) {
      // 50k connections to one ip:port need more than one ephemeral port range: spread
      // the source address over 127.0.0.2.. and let connect() pick the port per 4-tuple.
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl(0x7f000002u + (src_counter_++ % cfg_.sources));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
        ::close(fd);
        fail(i, std::string("bind: ") + std::strerror(errno));
        return;
      }
    }
    ++c.gen;
    c.fd = fd;
    c.st = St::connecting;
    c.in.clear();
    c.out.clear();
    c.frag.clear();
    c.dirty = false;
    c.t_start = now_ns();
    ++opening_;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (static_cast<uint64_t>(c.gen) << 32) | i;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&dst_), sizeof dst_);
    if (r != 0 && errno != EINPROGRESS) fail(i, std::string("connect: ") + std::strerror(errno));
  }

  // Close without counting a failure (the scenario is done with it).
  void close_conn(uint32_t i) {
    Conn& c = conns[i];
    if (c.fd < 0) return;
    if (c.st == St::connecting || c.st == St::handshake || c.st == St::joining) --opening_;
    ::close(c.fd);
    c.fd = -1;
    c.st = St::closed;
    ++c.gen;
    std::string().swap(c.in);
    std::string().swap(c.out);
    std::string().swap(c.frag);
  }

  void close_all() {
    for (uint32_t i = 0; i < conns.size(); ++i) close_conn(i);
  }

  void send_text(uint32_t i, std::string_view payload) {
    Conn& c = conns[i];
    if (c.fd < 0) return;
    append_frame(c.out, 0x1, payload, static_cast<uint32_t>(rng_.next()));
    mark_dirty(i);
  }

  // One round: wait for events (at most timeout_ms), handle them, write what they produced,
  // start queued connects.
  void poll(int timeout_ms) {
    epoll_event evs[512];
    int n = epoll_wait(ep_, evs, 512, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return;
      die("epoll_wait");
    }
    for (int k = 0; k < n; ++k) {
      const auto i = static_cast<uint32_t>(evs[k].data.u64 & 0xffffffffu);
      const auto gen = static_cast<uint32_t>(evs[k].data.u64 >> 32);
      if (i >= conns.size() || conns[i].gen != gen || conns[i].fd < 0) continue;
      if (conns[i].st == St::connecting) {
        if (!(evs[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
        on_connected(i);
        if (conns[i].gen != gen || conns[i].fd < 0) continue;
      } else if (evs[k].events & EPOLLOUT) {
        if (!conns[i].out.empty()) mark_dirty(i);
      }
      if (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) on_readable(i, gen);
    }
    flush();
    pump_queue();
  }

  // Poll until pred() holds or `seconds` pass; returns pred().
  template <class Pred>
  bool run_until(Pred pred, double seconds) {
    const uint64_t end = now_ns() + static_cast<uint64_t>(seconds * 1e9);
    while (!pred()) {
      const uint64_t t = now_ns();
      if (t >= end) return pred();
      poll(static_cast<int>(std::min<uint64_t>((end - t) / 1'000'000 + 1, 20)));
    }
    return true;
  }

  void run_for(double seconds) {
    run_until([] { return false; }, seconds);
  }

  bool all_ready_or_failed() const { return ready_count + failures >= conns.size(); }

  void fail(uint32_t i, const std::string& why) {
    ++failures;
    if (first_failure.empty()) first_failure = why;
    close_conn(i);
  }

  void note_error(std::string_view m) {
    ++errors;
    if (first_error.empty()) first_error = std::string(m.substr(0, 300));
  }

  const std::string& path() const { return default_path_; }

 private:
  void mark_dirty(uint32_t i) {
    if (!conns[i].dirty) {
      conns[i].dirty = true;
      dirty_.push_back(i);
    }
  }

  void flush() {
    for (size_t k = 0; k < dirty_.size(); ++k) {
      const uint32_t i = dirty_[k];
      Conn& c = conns[i];
      c.dirty = false;
      if (c.fd < 0 || c.out.empty() || c.st == St::connecting) continue;
      ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) continue;  // EPOLLOUT edge resumes
        fail(i, std::string("send: ") + std::strerror(errno));
        continue;
      }
      if (static_cast<size_t>(w) == c.out.size())
        c.out.clear();
      else
        c.out.erase(0, static_cast<size_t>(w));
    }
    dirty_.clear();
  }

  void pump_queue() {
    while (queue_pos_ < queue_.size() && opening_ < cfg_.parallel_connects)
      open(queue_[queue_pos_++]);
  }

  void on_connected(uint32_t i) {
    Conn& c = conns[i];
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      fail(i, std::string("connect: ") + std::strerror(err));
      return;
    }
    uint8_t nonce[16];
    const uint64_t a = rng_.next(), b = rng_.next();
    std::memcpy(nonce, &a, 8);
    std::memcpy(nonce + 8, &b, 8);
    std::string req = "GET ";
    req += default_path_;
    if (cfg_.server == Server::peerjs) {
      char q[96];
      std::snprintf(q, sizeof q, "%ckey=peerjs&id=p%" PRIu64 "&token=t%" PRIu64,
                    default_path_.find('?') == std::string::npos ? '?' : '&', c.id, c.id);
      req += q;
    }
    req += " HTTP/1.1\r\nHost: ";
    req += cfg_.host + ":" + std::to_string(cfg_.port);
    req += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
    req += base64(nonce, 16);
    req += "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.st = St::handshake;
    c.out = std::move(req);
    mark_dirty(i);
  }

  void on_readable(uint32_t i, uint32_t gen) {
    for (;;) {
      Conn& c = conns[i];
      if (c.gen != gen || c.fd < 0) return;
      ssize_t r = ::recv(c.fd, buf_.data(), buf_.size(), 0);
      if (r > 0) {
        feed(i, gen, buf_.data(), static_cast<size_t>(r));
        continue;
      }
      if (r == 0) {
        fail(i, std::string("server closed the connection") +
                    (c.st == St::ready ? "" : " before the join completed"));
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      fail(i, std::string("recv: ") + std::strerror(errno));
      return;
    }
  }

  // Consume bytes: the HTTP 101 answer first, then frames. Stops as soon as a callback
  // closed or reopened the connection.
  void feed(uint32_t i, uint32_t gen, char* data, size_t n) {
    Conn& c = conns[i];
    char* p = data;
    size_t len = n;
    if (!c.in.empty()) {
      c.in.append(data, n);
      p = c.in.data();
      len = c.in.size();
    }
    size_t pos = 0;
    if (c.st == St::handshake) {
      std::string_view v(p, len);
      size_t e = v.find("\r\n\r\n");
      if (e == std::string_view::npos) {
        if (c.in.empty()) c.in.assign(data, n);
        if (c.in.size() > 16384) fail(i, "oversized HTTP answer");
        return;
      }
      if (v.substr(0, 12) != "HTTP/1.1 101") {
        fail(i, "handshake refused: " + std::string(v.substr(0, v.find("\r\n"))));
        return;
      }
      pos = e + 4;
      c.st = St::joining;
      on_open(i);
    }
    while (pos < len) {
      Frame f;
      size_t used = parse_frame(p + pos, len - pos, f);
      if (used == 0) break;
      if (used == SIZE_MAX) {
        fail(i, "bad frame from server");
        return;
      }
      pos += used;
      on_frame(i, f);
      if (conns[i].gen != gen || conns[i].fd < 0) return;
    }
    Conn& cc = conns[i];
    if (pos >= len) {
      cc.in.clear();
    } else if (cc.in.empty()) {
      cc.in.assign(p + pos, len - pos);
    } else {
      cc.in.erase(0, pos);
    }
  }

  void on_frame(uint32_t i, const Frame& f) {
    Conn& c = conns[i];
    switch (f.opcode) {
      case 0x9:  // ping: pong with the same payload (y-webrtc pings every 30 s)
        append_frame(c.out, 0xA, std::string_view(f.payload, f.size),
                     static_cast<uint32_t>(rng_.next()));
        mark_dirty(i);
        return;
      case 0xA:
        return;
      case 0x8: {
        std::string why = "server sent close";
        if (f.size >= 2)
          why += " " +
                 std::to_string((static_cast<uint8_t>(f.payload[0]) << 8) |
                                static_cast<uint8_t>(f.payload[1])) +
                 " " + std::string(f.payload + 2, f.size - 2);
        fail(i, why);
        return;
      }
      case 0x0:
        c.frag.append(f.payload, f.size);
        if (!f.fin) return;
        {
          std::string whole = std::move(c.frag);
          c.frag.clear();
          if (c.frag_op == 0x1) on_message(i, whole);
        }
        return;
      case 0x1:
      case 0x2:
        if (!f.fin) {
          c.frag_op = f.opcode;
          c.frag.assign(f.payload, f.size);
          return;
        }
        if (f.opcode == 0x1) on_message(i, std::string_view(f.payload, f.size));
        return;
      default:
        fail(i, "unknown opcode from server");
    }
  }

  void on_open(uint32_t i) {
    const Conn& c = conns[i];
    char m[160];
    switch (cfg_.server) {
      case Server::rtcmesh:
        std::snprintf(m, sizeof m,
                      R"({"type":"join","room":"r%)" PRIu64 R"(","peer":"p%)" PRIu64
                      R"(","metadata":{"kind":"load"}})",
                      c.room, c.id);
        send_text(i, m);
        break;
      case Server::ywebrtc:
        // No acknowledgement for subscribe; the pong to the ping after it proves it was
        // processed (one connection's messages are handled in order).
        std::snprintf(m, sizeof m, R"({"type":"subscribe","topics":["r%)" PRIu64 R"("]})", c.room);
        send_text(i, m);
        send_text(i, R"({"type":"ping"})");
        break;
      case Server::peerjs:
        break;  // OPEN comes by itself
    }
  }

  void on_message(uint32_t i, std::string_view m) {
    Conn& c = conns[i];
    if (c.st == St::joining) {
      std::string_view t = json_type(m);
      bool done = false, bad = false;
      switch (cfg_.server) {
        case Server::rtcmesh:
          done = t == "welcome";
          bad = t == "error";
          break;
        case Server::ywebrtc:
          done = t == "pong";
          break;
        case Server::peerjs:
          done = t == "OPEN";
          bad = t == "ERROR" || t == "ID-TAKEN";
          break;
      }
      if (bad) {
        fail(i, "join refused: " + std::string(m.substr(0, 300)));
        return;
      }
      if (done) {
        c.st = St::ready;
        --opening_;
        ++ready_count;
        if (scenario) scenario->on_ready(i);
      }
      return;
    }
    if (scenario) scenario->on_text(i, m);
  }

  const Config& cfg_;
  Rng rng_;
  int ep_ = -1;
  sockaddr_in dst_{};
  std::string default_path_;
  std::vector<char> buf_;
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> queue_;
  size_t queue_pos_ = 0;
  uint32_t opening_ = 0;
  uint32_t src_counter_ = 0;
  uint64_t id_counter_ = 0;
};

// ---------------------------------------------------------------------------------------
// Output

class Json {
 public:
  Json& num(const char* k, double v, int decimals = 1) {
    key(k);
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", decimals, v);
    s_ += b;
    return *this;
  }
  Json& integer(const char* k, int64_t v) {
    key(k);
    s_ += std::to_string(v);
    return *this;
  }
  Json& str(const char* k, std::string_view v) {
    key(k);
    s_ += '"';
    for (char ch : v) {
      if (ch == '"' || ch == '\\') {
        s_ += '\\';
        s_ += ch;
      } else if (static_cast<unsigned char>(ch) < 0x20) {
        s_ += ' ';
      } else {
        s_ += ch;
      }
    }
    s_ += '"';
    return *this;
  }
  Json& raw(const char* k, const std::string& v) {
    key(k);
    s_ += v;
    return *this;
  }
  std::string done() const { return "{" + s_ + "}"; }

 private:
  void key(const char* k) {
    if (!s_.empty()) s_ += ',';
    s_ += '"';
    s_ += k;
    s_ += "\":";
  }
  std::string s_;
};

// Linear interpolation between closest ranks (as bench/run does).
double percentile(std::vector<uint32_t>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double r = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(r);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return static_cast<double>(v[lo]) +
         (r - static_cast<double>(lo)) * (static_cast<double>(v[hi]) - v[lo]);
}

// ---------------------------------------------------------------------------------------
// Scenarios

// Opens conns and waits for every join; false (with a message) on failure or timeout.
bool open_and_join(Engine& e, const Config& cfg, uint32_t n, std::string& error) {
  e.reset(n);
  e.open_all();
  e.run_until([&] { return e.failures > 0 || e.ready_count == n; }, cfg.timeout);
  if (e.failures > 0) {
    error = std::to_string(e.failures) + " connection(s) failed, first: " + e.first_failure;
    return false;
  }
  if (e.ready_count != n) {
    error = "timeout: " + std::to_string(e.ready_count) + " of " + std::to_string(n) + " joined";
    return false;
  }
  return true;
}

std::string run_idle(Engine& e, const Config& cfg) {
  Json j;
  j.str("server", server_name(cfg.server))
      .str("scenario", "idle")
      .integer("connections", cfg.connections);
  std::string error;
  // Warm-up: the first connections pay for code paths and allocator arenas, not for
  // per-connection state.
  const uint32_t warm = std::min<uint32_t>(cfg.connections, 200) & ~1u;
  if (warm > 0 && !open_and_join(e, cfg, warm, error))
    return j.str("error", "warm-up: " + error).done();
  e.close_all();
  e.run_for(1.0);
  const long rss0 = cfg.server_pid ? read_rss_kb(cfg.server_pid) : -1;
  const long self0 = read_rss_kb(getpid());
  const uint64_t t0 = now_ns();
  std::fprintf(stderr, "hubload: %s idle: opening %u connections\n", server_name(cfg.server),
               cfg.connections);
  if (!open_and_join(e, cfg, cfg.connections, error)) return j.str("error", error).done();
  const double open_s = seconds_since(t0);
  e.run_for(cfg.hold);  // answers pings; any close counts as a failure
  const long rss1 = cfg.server_pid ? read_rss_kb(cfg.server_pid) : -1;
  const long self1 = read_rss_kb(getpid());
  const double n = cfg.connections;
  j.num("open_seconds", open_s, 2).num("joins_per_s", n / open_s, 0);
  if (rss0 >= 0 && rss1 >= 0) {
    j.integer("server_rss_before_kB", rss0).integer("server_rss_after_kB", rss1);
    j.num("kB_per_connection", static_cast<double>(rss1 - rss0) / n, 2);
  }
  j.num("loadgen_kB_per_connection", static_cast<double>(self1 - self0) / n, 2);
  j.integer("dropped", static_cast<int64_t>(e.failures));
  if (e.failures > 0) j.str("error", "connections dropped while held: " + e.first_failure);
  e.close_all();
  return j.done();
}

class Forward : public Scenario {
 public:
  Forward(Engine& e, Server s, uint32_t inflight) : e_(e), server_(s), k_(inflight) {}

  struct Slot {
    uint64_t sent_ns = 0;
    uint8_t step = 0;
    bool in_flight = false;
  };

  bool running = false;
  bool measuring = false;
  uint64_t outstanding = 0;
  uint64_t received = 0;
  uint64_t received_bytes = 0;
  uint64_t echoes = 0;
  uint64_t mismatched = 0;
  std::vector<uint32_t> samples;  // one-way latency, ns
  std::vector<Slot> slots;

  void start() {
    slots.assign(e_.conns.size() / 2 * k_, Slot{});
    running = true;
    for (uint32_t s = 0; s < slots.size(); ++s) send(s, 0);
  }

  void on_text(uint32_t i, std::string_view m) override {
    uint32_t slot = 0;
    uint8_t step = 0;
    if (!find_tag(m, slot, step)) {
      std::string_view t = json_type(m);
      if (t == "error" || t == "ERROR" || t == "EXPIRE" || t == "LEAVE") e_.note_error(m);
      return;
    }
    const Conn& c = e_.conns[i];
    if (c.role == step % 2) {  // y-webrtc hands a publish back to its sender too
      ++echoes;
      return;
    }
    if (slot >= slots.size() || slot / k_ != i / 2 || !slots[slot].in_flight ||
        slots[slot].step != step) {
      ++mismatched;
      return;
    }
    const uint64_t t = now_ns();
    Slot& sl = slots[slot];
    if (measuring) {
      ++received;
      received_bytes += m.size();
      samples.push_back(static_cast<uint32_t>(std::min<uint64_t>(t - sl.sent_ns, UINT32_MAX)));
    }
    sl.in_flight = false;
    --outstanding;
    if (running) send(slot, static_cast<uint8_t>((step + 1) % kSteps));
  }

 private:
  void send(uint32_t slot, uint8_t step) {
    const uint32_t pair = slot / k_;
    const uint32_t from = pair * 2 + step % 2;
    const uint32_t to = from ^ 1;
    build(msg_, from, to, slot, step);
    Slot& sl = slots[slot];
    sl.step = step;
    sl.in_flight = true;
    ++outstanding;
    sl.sent_ns = now_ns();
    e_.send_text(from, msg_);
  }

  void build(std::string& s, uint32_t from, uint32_t to, uint32_t slot, uint8_t step) {
    const Conn& a = e_.conns[from];
    const Conn& b = e_.conns[to];
    const bool sdp = step < 2;
    const char* kind = step == 0 ? "offer" : step == 1 ? "answer" : "candidate";
    char ids[96];
    s.clear();
    switch (server_) {
      case Server::rtcmesh:
        std::snprintf(ids, sizeof ids, R"({"type":"%s","to":"p%)" PRIu64 R"(","session":")", kind,
                      b.id);
        s += ids;
        append_tag(s, slot, step);
        if (sdp) {
          s += R"(","sdp":")";
          s += sdp_json();
          s += "\"}";
        } else {
          s += R"(","candidate":)";
          s += kCandidateJson;
          s += '}';
        }
        break;
      case Server::ywebrtc:
        // What y-webrtc's client publishes (simple-peer signal objects), one topic per pair.
        std::snprintf(ids, sizeof ids,
                      R"({"type":"publish","topic":"r%)" PRIu64
                      R"(","data":{"type":"signal","to":"p%)" PRIu64 R"(","from":"p%)" PRIu64
                      R"(","session":")",
                      a.room, b.id, a.id);
        s += ids;
        append_tag(s, slot, step);
        if (sdp) {
          s += R"(","signal":{"type":")";
          s += kind;
          s += R"(","sdp":")";
          s += sdp_json();
          s += "\"}}}";
        } else {
          s += R"(","signal":{"type":"candidate","candidate":)";
          s += kCandidateJson;
          s += "}}}";
        }
        break;
      case Server::peerjs: {
        // What peerjs's client sends: payload with the SDP or candidate and its connection id.
        const char* type = step == 0 ? "OFFER" : step == 1 ? "ANSWER" : "CANDIDATE";
        std::snprintf(ids, sizeof ids, R"({"type":"%s","dst":"p%)" PRIu64 R"(","payload":{)", type,
                      b.id);
        s += ids;
        if (sdp) {
          s += R"("sdp":{"type":")";
          s += kind;
          s += R"(","sdp":")";
          s += sdp_json();
          s += R"("},"type":"data","connectionId":"dc_)";
          append_tag(s, slot, step);
          s += step == 0 ? R"(","label":"dc","reliable":true,"serialization":"binary"}})" : "\"}}";
        } else {
          s += R"("candidate":)";
          s += kCandidateJson;
          s += R"(,"type":"data","connectionId":"dc_)";
          append_tag(s, slot, step);
          s += "\"}}";
        }
        break;
      }
    }
  }

  Engine& e_;
  Server server_;
  uint32_t k_;
  std::string msg_;
};

std::string run_forward(Engine& e, const Config& cfg) {
  Json j;
  j.str("server", server_name(cfg.server)).str("scenario", "forward");
  j.num("duration_s", cfg.duration, 2)
      .integer("sdp_json_bytes", static_cast<int64_t>(sdp_json().size()));
  std::string levels = "[";
  std::string error;
  for (const Level& lv : cfg.levels) {
    Json l;
    l.integer("pairs", lv.pairs).integer("inflight", lv.inflight);
    std::fprintf(stderr, "hubload: %s forward: %u pairs x %u in flight\n", server_name(cfg.server),
                 lv.pairs, lv.inflight);
    if (!open_and_join(e, cfg, lv.pairs * 2, error)) {
      l.str("error", error);
      levels += (levels.size() > 1 ? "," : "") + l.done();
      e.close_all();
      continue;
    }
    Forward fw(e, cfg.server, lv.inflight);
    fw.samples.reserve(1 << 20);
    e.scenario = &fw;
    fw.start();
    e.run_for(cfg.warmup);
    fw.measuring = true;
    const double scpu0 = cfg.server_pid ? read_cpu_seconds(cfg.server_pid) : -1;
    const double lcpu0 = self_cpu_seconds();
    const uint64_t t0 = now_ns();
    e.run_for(cfg.duration);
    fw.measuring = false;
    const double secs = seconds_since(t0);
    const double scpu1 = cfg.server_pid ? read_cpu_seconds(cfg.server_pid) : -1;
    const double lcpu1 = self_cpu_seconds();
    fw.running = false;
    e.run_until([&] { return fw.outstanding == 0 || e.failures > 0; }, 5.0);
    l.num("msgs_per_s", static_cast<double>(fw.received) / secs, 0);
    l.num("MBps", static_cast<double>(fw.received_bytes) / secs / 1e6, 2);
    l.num("p50_us", percentile(fw.samples, 0.50) / 1000.0, 1);
    l.num("p99_us", percentile(fw.samples, 0.99) / 1000.0, 1);
    l.num("max_us", fw.samples.empty() ? 0.0 : fw.samples.back() / 1000.0, 1);
    l.integer("received", static_cast<int64_t>(fw.received));
    l.integer("lost", static_cast<int64_t>(fw.outstanding));
    l.integer("errors", static_cast<int64_t>(e.errors + fw.mismatched));
    l.integer("echoes", static_cast<int64_t>(fw.echoes));
    if (scpu0 >= 0 && scpu1 >= 0) {
      l.num("server_cpu", (scpu1 - scpu0) / secs, 2);
      // Less at the mercy of other load on the machine than msgs/s.
      if (scpu1 > scpu0)
        l.num("msgs_per_server_cpu_s", static_cast<double>(fw.received) / (scpu1 - scpu0), 0);
    }
    l.num("loadgen_cpu", (lcpu1 - lcpu0) / secs, 2);
    if (e.failures > 0) l.str("error", "connection failed: " + e.first_failure);
    if (!e.first_error.empty()) l.str("first_error", e.first_error);
    levels += (levels.size() > 1 ? "," : "") + l.done();
    e.scenario = nullptr;
    e.close_all();
    e.run_for(0.2);
  }
  levels += "]";
  j.raw("levels", levels);
  return j.done();
}

class Churn : public Scenario {
 public:
  explicit Churn(Engine& e) : e_(e) {}
  bool running = true;
  bool measuring = false;
  uint64_t joins = 0;
  uint64_t active = 0;
  std::vector<uint32_t> samples;

  void start(uint32_t i) {
    Conn& c = e_.conns[i];
    c.id = e_.next_id();
    c.room = c.id / 2;  // consecutive joiners share a room now and then
    ++active;
    e_.open(i);
  }

  void on_ready(uint32_t i) override {
    Conn& c = e_.conns[i];
    if (measuring) {
      ++joins;
      samples.push_back(
          static_cast<uint32_t>(std::min<uint64_t>(now_ns() - c.t_start, UINT32_MAX)));
    }
    e_.close_conn(i);
    --active;
    if (running) start(i);
  }

 private:
  Engine& e_;
};

std::string run_churn(Engine& e, const Config& cfg) {
  Json j;
  j.str("server", server_name(cfg.server))
      .str("scenario", "churn")
      .integer("concurrency", cfg.concurrency);
  e.reset(cfg.concurrency);
  Churn ch(e);
  e.scenario = &ch;
  for (uint32_t i = 0; i < cfg.concurrency; ++i) ch.start(i);
  e.run_for(cfg.warmup);
  ch.measuring = true;
  const double scpu0 = cfg.server_pid ? read_cpu_seconds(cfg.server_pid) : -1;
  const uint64_t t0 = now_ns();
  // A failed join closes its slot; keep the rest going and report the count.
  e.run_for(cfg.duration);
  ch.measuring = false;
  const double secs = seconds_since(t0);
  const double scpu1 = cfg.server_pid ? read_cpu_seconds(cfg.server_pid) : -1;
  ch.running = false;
  e.run_until([&] { return ch.active <= e.failures; }, 5.0);
  e.scenario = nullptr;
  j.num("joins_per_s", static_cast<double>(ch.joins) / secs, 0);
  j.num("p50_ms", percentile(ch.samples, 0.5) / 1e6, 3);
  j.num("p99_ms", percentile(ch.samples, 0.99) / 1e6, 3);
  j.integer("joins", static_cast<int64_t>(ch.joins));
  j.integer("failures", static_cast<int64_t>(e.failures));
  if (scpu0 >= 0 && scpu1 >= 0) j.num("server_cpu", (scpu1 - scpu0) / secs, 2);
  if (e.failures > 0)
    j.str("error", std::to_string(e.failures) + " join(s) failed, first: " + e.first_failure);
  e.close_all();
  return j.done();
}

// ---------------------------------------------------------------------------------------

void usage(FILE* f) {
  std::fputs(
      "usage: rtcmesh-hubload --server rtcmesh|y-webrtc|peerjs --port PORT --scenario "
      "idle|forward|churn\n"
      "  [--host 127.0.0.1] [--path PATH]     WebSocket path (rtcmesh /signaling, y-webrtc /, "
      "peerjs /peerjs)\n"
      "  [--server-pid PID]                   read the server's VmRSS and CPU time from /proc\n"
      "  [--connections N]                    idle: connections to hold (1000)\n"
      "  [--hold SECONDS]                     idle: hold time before the RSS reading (2)\n"
      "  [--levels PxK,...]                   forward: P pairs with K exchanges in flight each\n"
      "                                       (1x4,10x4,100x4,1000x4)\n"
      "  [--concurrency C]                    churn: clients joining at once (64)\n"
      "  [--duration S] [--warmup S]          measured window (3) after a warm-up (0.5)\n"
      "  [--parallel-connects N]              handshakes in progress at most (256)\n"
      "  [--sources N]                        source addresses 127.0.0.2.. round robin (8; 0 = "
      "kernel's)\n"
      "  [--id-base N]                        first peer id number (ids must differ per server "
      "run)\n"
      "  [--timeout S]                        joining deadline (180)\n"
      "Prints one JSON object on stdout; exit 1 when it holds \"error\".\n",
      f);
}

bool parse_levels(const char* s, std::vector<Level>& out) {
  out.clear();
  std::string v(s);
  size_t p = 0;
  while (p < v.size()) {
    size_t e = v.find(',', p);
    if (e == std::string::npos) e = v.size();
    std::string item = v.substr(p, e - p);
    unsigned a = 0, b = 0;
    char x = 0;
    if (std::sscanf(item.c_str(), "%u%c%u", &a, &x, &b) != 3 || x != 'x' || a == 0 || b == 0 ||
        b > 1000 || static_cast<uint64_t>(a) * b > 9'999'999)
      return false;
    out.push_back({a, b});
    p = e + 1;
  }
  return !out.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  bool have_server = false;
  auto need = [&](int& i) -> const char* {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "rtcmesh-hubload: %s needs a value\n", argv[i]);
      std::exit(2);
    }
    return argv[++i];
  };
  auto number = [&](const char* flag, const char* v, double lo, double hi) {
    char* end = nullptr;
    double d = std::strtod(v, &end);
    if (!end || *end || d < lo || d > hi) {
      std::fprintf(stderr, "rtcmesh-hubload: bad value for %s: %s\n", flag, v);
      std::exit(2);
    }
    return d;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "--server") {
      std::string v = need(i);
      have_server = true;
      if (v == "rtcmesh")
        cfg.server = Server::rtcmesh;
      else if (v == "y-webrtc" || v == "ywebrtc")
        cfg.server = Server::ywebrtc;
      else if (v == "peerjs")
        cfg.server = Server::peerjs;
      else {
        std::fprintf(stderr, "rtcmesh-hubload: unknown server %s\n", v.c_str());
        return 2;
      }
    } else if (a == "--host")
      cfg.host = need(i);
    else if (a == "--port")
      cfg.port = static_cast<uint16_t>(number("--port", need(i), 1, 65535));
    else if (a == "--path")
      cfg.path = need(i);
    else if (a == "--scenario")
      cfg.scenario = need(i);
    else if (a == "--connections")
      cfg.connections = static_cast<uint32_t>(number("--connections", need(i), 2, 1e6));
    else if (a == "--levels") {
      const char* v = need(i);
      if (!parse_levels(v, cfg.levels)) {
        std::fprintf(stderr, "rtcmesh-hubload: bad --levels %s (want e.g. 1x4,100x4)\n", v);
        return 2;
      }
    } else if (a == "--duration")
      cfg.duration = number("--duration", need(i), 0.05, 3600);
    else if (a == "--warmup")
      cfg.warmup = number("--warmup", need(i), 0, 3600);
    else if (a == "--hold")
      cfg.hold = number("--hold", need(i), 0, 3600);
    else if (a == "--timeout")
      cfg.timeout = number("--timeout", need(i), 1, 36000);
    else if (a == "--concurrency")
      cfg.concurrency = static_cast<uint32_t>(number("--concurrency", need(i), 1, 1e5));
    else if (a == "--parallel-connects")
      cfg.parallel_connects = static_cast<uint32_t>(number("--parallel-connects", need(i), 1, 1e6));
    else if (a == "--sources")
      cfg.sources = static_cast<uint32_t>(number("--sources", need(i), 0, 250));
    else if (a == "--server-pid")
      cfg.server_pid = static_cast<int>(number("--server-pid", need(i), 1, 1e9));
    else if (a == "--id-base")
      cfg.id_base = static_cast<uint64_t>(number("--id-base", need(i), 0, 1e15));
    else {
      std::fprintf(stderr, "rtcmesh-hubload: unknown argument %s\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (!have_server || cfg.port == 0 ||
      (cfg.scenario != "idle" && cfg.scenario != "forward" && cfg.scenario != "churn")) {
    usage(stderr);
    return 2;
  }
  cfg.connections &= ~1u;  // whole pairs
  std::signal(SIGPIPE, SIG_IGN);
  // Every connection is a descriptor: take as many as the hard limit (root may raise it).
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rlimit want{1 << 20, 1 << 20};
  if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  Engine e(cfg);
  e.set_id_base(cfg.id_base);
  std::string out;
  if (cfg.scenario == "idle")
    out = run_idle(e, cfg);
  else if (cfg.scenario == "forward")
    out = run_forward(e, cfg);
  else
    out = run_churn(e, cfg);
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
  return out.find("\"error\"") == std::string::npos ? 0 : 1;
}
