// The hub server. One io_context thread owns everything: rooms, connections and
// their buffers, so nothing takes a lock (see docs/hub.md for the measurements
// behind that choice).
//
// Plain sockets sit in an epoll set of the hub's own (registered once, edge-
// triggered), which Asio waits on as one descriptor: Asio's own reactor would issue
// an epoll_ctl for every wait. Per connection the hub keeps no read buffer while
// idle: ready sockets are read into one shared scratch buffer, which the WebSocket
// decoder unmasks in place. Outgoing frames are appended to one string per
// connection and sent with one direct send per loop turn (write coalescing).
#include "hub/hub.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/base64.hpp"
#include "base/log.hpp"
#include "hub/auth.hpp"
#include "hub/message.hpp"
#include "hub/rate_limiter.hpp"
#include "hub/web_assets.hpp"
#include "hub/ws_codec.hpp"
#include "rtcmesh/version.hpp"

namespace rtcmesh::hub {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr const char* kVersion = RTCMESH_VERSION;
constexpr size_t kScratchBytes = 64 * 1024;
constexpr size_t kTlsReadBytes = 4096;
constexpr size_t kMaxHttpHeader = 16 * 1024;
constexpr int64_t kCloseGraceMs = 5000;
// Kept after a write when the connection goes quiet; larger buffers are released.
constexpr size_t kKeepBufferBytes = 1024;
// Bytes read from one connection per event-loop turn before the others get theirs.
constexpr size_t kReadBudgetBytes = 256 * 1024;
// Events taken from the plain-socket epoll set per turn, and accepts per wake-up.
constexpr int kPollEvents = 256;
constexpr int kAcceptBatch = 64;

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(size_t bytes) {
  std::array<unsigned char, 32> raw{};
  bytes = std::min(bytes, raw.size());
  if (RAND_bytes(raw.data(), static_cast<int>(bytes)) != 1) {
    // Never fall back to something guessable for a resume secret.
    throw std::runtime_error("RAND_bytes failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    out.push_back(kHex[raw[i] >> 4]);
    out.push_back(kHex[raw[i] & 0xF]);
  }
  return out;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// "keep-alive, Upgrade" contains the token "upgrade".
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int hi = hex(in[i + 1]);
      const int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return true;
}

std::string query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      std::string value;
      if (eq != std::string_view::npos && percent_decode(pair.substr(eq + 1), value)) return value;
      return {};
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

const char* content_type_for(std::string_view path) {
  const size_t dot = path.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : path.substr(dot + 1);
  if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "json") return "application/json";
  if (ext == "webmanifest") return "application/manifest+json";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "txt") return "text/plain; charset=utf-8";
  if (ext == "wasm") return "application/wasm";
  return "application/octet-stream";
}

std::string websocket_accept(std::string_view key) {
  const std::string input = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base::base64_encode(std::span<const uint8_t>(digest, sizeof(digest)));
}

class Connection;
class Server;

struct Room {
  std::string id;
  std::unordered_map<std::string, Connection*> peers;
};

// Hot-path counters are plain integers; /metrics copies them into prometheus-cpp.
struct Counters {
  std::array<uint64_t, kMessageTypeCount> received{};
  std::array<uint64_t, kMessageTypeCount> forwarded{};
  uint64_t received_invalid = 0;
  uint64_t received_total = 0;
  uint64_t forwarded_total = 0;
  std::map<std::string, uint64_t, std::less<>> rejections;
  std::map<std::string, uint64_t, std::less<>> http_requests;
};

class Metrics {
 public:
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry)
      : registry_(registry ? std::move(registry) : std::make_shared<prometheus::Registry>()),
        connections_(prometheus::BuildGauge()
                         .Name("rtcmesh_hub_connections")
                         .Help("Open WebSocket connections")
                         .Register(*registry_)
                         .Add({})),
        rooms_(prometheus::BuildGauge()
                   .Name("rtcmesh_hub_rooms")
                   .Help("Rooms with at least one peer")
                   .Register(*registry_)
                   .Add({})),
        peers_(prometheus::BuildGauge()
                   .Name("rtcmesh_hub_peers")
                   .Help("Joined peers")
                   .Register(*registry_)
                   .Add({})),
        received_(prometheus::BuildCounter()
                      .Name("rtcmesh_hub_messages_received_total")
                      .Help("Client messages received, by type (invalid = rejected before typing)")
                      .Register(*registry_)),
        forwarded_(prometheus::BuildCounter()
                       .Name("rtcmesh_hub_messages_forwarded_total")
                       .Help("Messages delivered to another peer, by type")
                       .Register(*registry_)),
        rejections_(prometheus::BuildCounter()
                        .Name("rtcmesh_hub_rejections_total")
                        .Help("Rejected messages, connections and requests, by reason")
                        .Register(*registry_)),
        http_(prometheus::BuildCounter()
                  .Name("rtcmesh_hub_http_requests_total")
                  .Help("HTTP requests, by route")
                  .Register(*registry_)) {}

  std::string render(const Counters& c, size_t connections, size_t rooms, size_t peers) {
    connections_.Set(static_cast<double>(connections));
    rooms_.Set(static_cast<double>(rooms));
    peers_.Set(static_cast<double>(peers));
    for (size_t i = 0; i < kMessageTypeCount; ++i) {
      const char* name = message_type_name(static_cast<MessageType>(i));
      sync(received_, "type", name, c.received[i]);
      sync(forwarded_, "type", name, c.forwarded[i]);
    }
    sync(received_, "type", "invalid", c.received_invalid);
    for (const auto& [reason, n] : c.rejections) sync(rejections_, "reason", reason, n);
    for (const auto& [path, n] : c.http_requests) sync(http_, "path", path, n);
    return prometheus::TextSerializer().Serialize(registry_->Collect());
  }

 private:
  void sync(prometheus::Family<prometheus::Counter>& family, const std::string& label,
            const std::string& value, uint64_t total) {
    auto& counter = family.Add({{label, value}});
    const double now = static_cast<double>(total);
    const double before = counter.Value();
    if (now > before) counter.Increment(now - before);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& connections_;
  prometheus::Gauge& rooms_;
  prometheus::Gauge& peers_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& forwarded_;
  prometheus::Family<prometheus::Counter>& rejections_;
  prometheus::Family<prometheus::Counter>& http_;
};

class Server {
 public:
  Server(const HubOptions& options, asio::io_context& io, ssl::context* tls)
      : opt_(options),
        io_(io),
        acceptor_(io),
        tls_(tls),
        sweep_timer_(io),
        accept_retry_timer_(io),
        shutdown_timer_(io),
        signals_(io, SIGINT, SIGTERM),
        poll_wait_(io),
        scratch_(kScratchBytes) {
    for (const auto& asset : embedded_web_assets()) assets_.emplace(asset.path, &asset);
  }
  ~Server() {
    // Connections closed in the last turn hold themselves here; free them while the
    // server they unregister from still exists.
    carry_.clear();
    graveyard_.clear();
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  error_code listen(const tcp::endpoint& endpoint) {
    error_code ec;
    const int poll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (poll_fd < 0) return error_code(errno, boost::system::system_category());
    poll_wait_.assign(poll_fd, ec);
    if (ec) {
      ::close(poll_fd);
      return ec;
    }
    protocol_ = endpoint.protocol();
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) return ec;
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_.bind(endpoint, ec);
    if (ec) return ec;
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return ec;
    // accept4() runs until EAGAIN after each wake-up.
    acceptor_.non_blocking(true, ec);
    return ec;
  }

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void start() {
    started_unix_ms_ = unix_ms();
    now_ = mono_ms();
    accept();
    sweep();
    arm_poll();
    signals_.async_wait([this](const error_code& ec, int) {
      if (!ec) shutdown();
    });
  }

  // --- used by Connection ---
  const HubOptions& options() const { return opt_; }
  bool tls() const { return tls_ != nullptr; }
  int64_t now() const { return now_; }
  void touch_clock() { now_ = mono_ms(); }
  std::vector<uint8_t>& scratch() { return scratch_; }
  Counters& counters() { return counters_; }
  ClientMessage& message_scratch() { return message_; }
  bool shutting_down() const { return shutting_down_; }
  asio::io_context& io() { return io_; }
  int poll_fd() { return poll_wait_.native_handle(); }

  // A closed plain connection keeps itself alive until the current turn is over
  // (events already taken from epoll may still name it).
  void retire(std::shared_ptr<Connection> c) {
    graveyard_.push_back(std::move(c));
    if (!in_poll_ && !reap_posted_) {
      reap_posted_ = true;
      asio::post(io_, [this] {
        reap_posted_ = false;
        graveyard_.clear();
      });
    }
  }
  // A connection that used its read budget this turn is read again next turn.
  void carry(std::shared_ptr<Connection> c) { carry_.push_back(std::move(c)); }

  // Counts a rejection, and tells the witness: refused joins (with the room
  // and peer asked for) up to 20 a second per reason, other kinds once a second
  // per reason, each record with the count since the last (a flood of bad
  // frames or joins must not become a flood of records).
  void count_rejection(std::string_view reason, std::string_view room = {},
                       std::string_view peer = {}, bool join = false) {
    auto it = counters_.rejections.find(reason);
    if (it == counters_.rejections.end()) {
      it = counters_.rejections.emplace(std::string(reason), 0).first;
    }
    ++it->second;
    if (!opt_.on_audit) return;
    auto& a = audit_rejections_[it->first];
    ++a.pending;
    const auto now = std::chrono::steady_clock::now();
    if (now - a.window >= std::chrono::seconds(1)) {
      a.window = now;
      a.in_window = 0;
    }
    if (a.in_window >= (join ? 20u : 1u)) return;
    ++a.in_window;
    audit("hub_reject", room, peer, reason, false, a.pending);
    a.pending = 0;
  }
  void audit(std::string_view type, std::string_view room, std::string_view peer,
             std::string_view reason, bool resumed = false, uint64_t count = 1) {
    if (opt_.on_audit) opt_.on_audit({type, room, peer, reason, resumed, count});
  }
  void count_http(std::string_view route) {
    auto it = counters_.http_requests.find(route);
    if (it == counters_.http_requests.end()) {
      it = counters_.http_requests.emplace(std::string(route), 0).first;
    }
    ++it->second;
  }

  void add(Connection* c);
  void remove(Connection* c);
  void mark_dirty(std::shared_ptr<Connection> c) {
    dirty_.push_back(std::move(c));
    // Inside poll() the flush comes at the end of the turn anyway.
    if (!flush_posted_ && !in_poll_) {
      flush_posted_ = true;
      asio::post(io_, [this] { flush_dirty(); });
    }
  }

  size_t websocket_count() const { return websocket_count_; }
  void websocket_opened() { ++websocket_count_; }
  void websocket_closed() { --websocket_count_; }

  Room* find_room(const std::string& id) {
    auto it = rooms_.find(id);
    return it == rooms_.end() ? nullptr : it->second.get();
  }
  Room* create_room(const std::string& id) {
    auto room = std::make_unique<Room>();
    room->id = id;
    Room* raw = room.get();
    rooms_.emplace(id, std::move(room));
    return raw;
  }
  void drop_room_if_empty(Room* room) {
    if (room->peers.empty()) rooms_.erase(room->id);
  }
  size_t room_count() const { return rooms_.size(); }
  size_t peer_count() const { return peer_count_; }
  void peer_added() { ++peer_count_; }
  void peer_removed() { --peer_count_; }

  std::string health_json() const {
    nlohmann::json j = {{"status", "ok"},
                        {"version", kVersion},
                        {"uptime_seconds", (unix_ms() - started_unix_ms_) / 1000},
                        {"connections", websocket_count_}};
    if (!opt_.node_id.empty()) j["node_id"] = opt_.node_id;
    return j.dump();
  }
  std::string stats_json() const;
  std::string ice_servers_json(std::string_view peer) const;
  std::string metrics_text() {
    return metrics_.render(counters_, websocket_count_, rooms_.size(), peer_count_);
  }
  const WebAsset* find_asset(const std::string& path) const {
    auto it = assets_.find(path);
    return it == assets_.end() ? nullptr : it->second;
  }

 private:
  void accept();
  void start_connection(int fd);
  void sweep();
  void arm_poll();
  void poll();
  void flush_dirty();
  void flush_now();
  void shutdown();
  void wait_for_drain();

  HubOptions opt_;
  asio::io_context& io_;
  tcp::acceptor acceptor_;
  tcp protocol_ = tcp::v4();
  ssl::context* tls_;
  asio::steady_timer sweep_timer_;
  asio::steady_timer accept_retry_timer_;
  asio::steady_timer shutdown_timer_;
  asio::signal_set signals_;
  // Plain (non-TLS) sockets live in this epoll set of our own, registered once,
  // edge-triggered, for reading and writing: Asio's reactor would issue an
  // epoll_ctl for every wait. Asio waits on the set itself.
  asio::posix::stream_descriptor poll_wait_;
  bool in_poll_ = false;
  bool reap_posted_ = false;
  std::vector<uint8_t> scratch_;
  std::vector<Connection*> all_;
  std::vector<std::shared_ptr<Connection>> graveyard_;
  std::vector<std::shared_ptr<Connection>> carry_;
  std::vector<std::shared_ptr<Connection>> carrying_;
  size_t websocket_count_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Room>> rooms_;
  size_t peer_count_ = 0;
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<std::shared_ptr<Connection>> flushing_;
  bool flush_posted_ = false;
  bool shutting_down_ = false;
  int64_t shutdown_deadline_ = 0;
  int64_t now_ = 0;
  int64_t started_unix_ms_ = 0;
  ClientMessage message_;
  Counters counters_;
  Metrics metrics_{opt_.registry};
  struct AuditThrottle {
    std::chrono::steady_clock::time_point window{};  // start of the current second
    uint32_t in_window = 0;                          // records in it
    uint64_t pending = 0;                            // rejections since the last record
  };
  std::map<std::string, AuditThrottle, std::less<>> audit_rejections_;
  std::unordered_map<std::string, const WebAsset*> assets_;
};

class Connection : public WsSink, public std::enable_shared_from_this<Connection> {
 public:
  enum class Phase : uint8_t { Handshake, Http, WebSocket, Closing, Closed };

  // TLS: an Asio socket, driven by Asio's reactor.
  Connection(Server& server, tcp::socket socket)
      : server_(server), socket_(std::move(socket)), decoder_(server.options().max_frame) {
    last_activity_ = server_.now();
    server_.add(this);
  }
  // Plain: a non-blocking descriptor in the server's own epoll set.
  Connection(Server& server, int fd)
      : server_(server), socket_(server.io()), fd_(fd), decoder_(server.options().max_frame) {
    last_activity_ = server_.now();
    server_.add(this);
  }
  ~Connection() override {
    if (fd_ >= 0) ::close(fd_);
    server_.remove(this);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start(ssl::context* tls) {
    http_ = std::make_unique<HttpState>();
    if (!tls) {
      const int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = this;
      if (::epoll_ctl(server_.poll_fd(), EPOLL_CTL_ADD, fd_, &ev) != 0) {
        RTCMESH_LOG(Warn, "hub", "epoll_ctl: " << std::strerror(errno));
        ::close(fd_);
        fd_ = -1;
        phase_ = Phase::Closed;
        return;
      }
      self_ = shared_from_this();
      phase_ = Phase::Http;
      return;
    }
    error_code ec;
    socket_.non_blocking(true, ec);
    socket_.set_option(tcp::no_delay(true), ec);
    tls_ = std::make_unique<ssl::stream<tcp::socket&>>(socket_, *tls);
    // Idle TLS connections should not pin OpenSSL's 16 KiB record buffers.
    SSL_set_mode(tls_->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    tls_->async_handshake(ssl::stream_base::server,
                          [self = shared_from_this()](const error_code& hec) {
                            if (self->phase_ == Phase::Closed) return;
                            if (hec) {
                              self->server_.count_rejection("tls_handshake_failed");
                              self->close_now();
                              return;
                            }
                            self->phase_ = Phase::Http;
                            self->read();
                          });
  }

  Phase phase() const { return phase_; }
  int64_t last_activity() const { return last_activity_; }
  int64_t closing_deadline() const { return closing_deadline_; }
  bool overflowed() const { return overflow_; }
  const std::string& peer() const { return peer_; }

  // Readiness of a plain socket, from Server::poll().
  void on_events(uint32_t events) {
    if (phase_ == Phase::Closed) return;
    if ((events & EPOLLOUT) && writing_) continue_write();
    if (phase_ == Phase::Closed) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      // After a hang-up or an error only EAGAIN or EOF proves the socket was drained.
      read_direct((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
    }
  }
  // Stopped by the read budget last turn: data may be left with no new edge to come.
  void on_carried() {
    if (phase_ != Phase::Closed) read_direct(true);
  }

  // From the sweep: a connection that wrote nothing since the last sweep gives back
  // its output buffer.
  void trim_if_quiet() {
    if (!wrote_ && !writing_ && out_.empty() && out_.capacity() > kKeepBufferBytes) {
      std::string().swap(out_);
    }
    wrote_ = false;
  }

  // Timeout: silent for peer_timeout.
  void time_out() {
    if (phase_ == Phase::WebSocket) {
      server_.count_rejection("timeout");
      close_ws(close_code::kTimeout, "peer timeout", "timeout");
    } else {
      close_now();
    }
  }

  void say_shutdown() {
    if (phase_ == Phase::WebSocket) {
      send_text(R"({"type":"server-shutdown"})");
      close_ws(close_code::kGoingAway, "server shutdown", "closed");
    } else if (phase_ != Phase::Closing) {
      close_now();
    }
  }

  // Called by the server's flush pass.
  void flush() {
    flush_pending_ = false;
    if (overflow_ && phase_ == Phase::WebSocket) {
      overflow_ = false;
      out_.clear();
      server_.count_rejection("slow_consumer");
      std::string e;
      error_json(e, "slow_consumer", "outgoing queue exceeded its bound; closing", {}, {});
      append_text_frame(out_, e);
      close_ws(close_code::kPolicy, "slow consumer", "closed");
    }
    start_write();
  }

  void close_now() {
    if (phase_ == Phase::Closed) return;
    const bool was_websocket = phase_ == Phase::WebSocket || phase_ == Phase::Closing;
    leave_room("closed");
    phase_ = Phase::Closed;
    if (was_websocket && counted_) server_.websocket_closed();
    counted_ = false;
    http_.reset();
    if (fd_ >= 0) {
      ::close(fd_);  // also leaves the epoll set
      fd_ = -1;
      server_.retire(std::move(self_));
      return;
    }
    error_code ec;
    socket_.close(ec);
  }

  // Queues a text frame (a followed by b). Dropped once the connection is closing.
  void send_text(std::string_view a, std::string_view b = {}) {
    if (phase_ != Phase::WebSocket || overflow_) return;
    append_text_frame(out_, a, b);
    if (out_.size() + inflight_.size() > server_.options().max_write_queue) {
      // Handled in flush(), outside whatever loop over the room is running now, and
      // even while a write is stuck (that is the usual reason for the overflow).
      overflow_ = true;
      if (!flush_pending_) {
        flush_pending_ = true;
        server_.mark_dirty(shared_from_this());
      }
      return;
    }
    schedule_flush();
  }

 private:
  struct HttpState {
    http::request_parser<http::empty_body> parser;
    std::string buffer;
    HttpState() {
      parser.header_limit(kMaxHttpHeader);
      parser.body_limit(0);
    }
  };

  // --- reading ---
  // TLS only; plain sockets are read from Server::poll().
  void read() {
    if (tls_buffer_.size() < kTlsReadBytes) tls_buffer_.resize(kTlsReadBytes);
    tls_->async_read_some(asio::buffer(tls_buffer_),
                          [self = shared_from_this()](const error_code& ec, size_t n) {
                            if (self->phase_ == Phase::Closed) return;
                            if (ec) {
                              self->close_now();
                              return;
                            }
                            self->server_.touch_clock();
                            self->on_bytes(reinterpret_cast<uint8_t*>(self->tls_buffer_.data()), n);
                            if (self->phase_ != Phase::Closed) self->read();
                          });
  }

  // Plain socket: reads into the shared scratch buffer until the socket is drained
  // or this turn's budget is used. A read shorter than the buffer drained it (a later
  // arrival raises a new edge), unless the peer hung up.
  void read_direct(bool until_eagain) {
    auto& scratch = server_.scratch();
    size_t total = 0;
    for (;;) {
      const ssize_t n = ::recv(fd_, scratch.data(), scratch.size(), 0);
      if (n > 0) {
        const size_t got = static_cast<size_t>(n);
        on_bytes(scratch.data(), got);
        if (phase_ == Phase::Closed) return;
        if (got < scratch.size() && !until_eagain) return;
        total += got;
        if (total >= kReadBudgetBytes) {
          server_.carry(shared_from_this());
          return;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      close_now();  // EOF or a socket error
      return;
    }
  }

  void on_bytes(uint8_t* data, size_t n) {
    last_activity_ = server_.now();
    if (phase_ == Phase::Http) {
      on_http_bytes(data, n);
    } else if (phase_ == Phase::WebSocket || phase_ == Phase::Closing) {
      on_ws_bytes(data, n);
    }
  }

  void on_ws_bytes(uint8_t* data, size_t n) {
    switch (decoder_.feed(data, n, *this)) {
      case WsDecoder::Status::Ok:
      case WsDecoder::Status::Stopped:
        break;
      case WsDecoder::Status::Failed: {
        const WsError& e = decoder_.error();
        if (phase_ == Phase::WebSocket) {
          server_.count_rejection(e.reason);
          close_ws(e.close_code, e.reason, "closed");
        } else {
          close_now();
        }
        break;
      }
    }
  }

  // --- HTTP ---
  void on_http_bytes(uint8_t* data, size_t n) {
    http_->buffer.append(reinterpret_cast<const char*>(data), n);
    while (phase_ == Phase::Http && !close_after_flush_) {
      error_code ec;
      const size_t used = http_->parser.put(asio::buffer(http_->buffer), ec);
      http_->buffer.erase(0, used);
      if (ec == http::error::need_more) {
        if (http_->buffer.size() > kMaxHttpHeader) {
          server_.count_rejection("bad_http");
          respond_error(431, "Request Header Fields Too Large", "request header too large");
        }
        return;
      }
      if (ec) {
        server_.count_rejection("bad_http");
        respond_error(400, "Bad Request", "malformed HTTP request");
        return;
      }
      if (!http_->parser.is_done()) return;
      std::string leftover = std::move(http_->buffer);
      const bool upgraded = handle_request(http_->parser.get());
      if (upgraded) {
        http_.reset();
        if (!leftover.empty()) {
          on_ws_bytes(reinterpret_cast<uint8_t*>(leftover.data()), leftover.size());
        }
        return;
      }
      if (phase_ != Phase::Http || close_after_flush_) return;
      http_ = std::make_unique<HttpState>();
      http_->buffer = std::move(leftover);
      if (http_->buffer.empty()) return;
    }
  }

  void respond(unsigned status, std::string_view reason, std::string_view content_type,
               std::string_view body, bool head, bool keep_alive, std::string_view extra = {}) {
    std::string& out = out_;
    out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason);
    out.append("\r\nServer: rtcmesh-hub/").append(kVersion);
    out.append("\r\nContent-Type: ").append(content_type);
    out.append("\r\nContent-Length: ").append(std::to_string(body.size()));
    out.append("\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
    out.append(extra);
    if (!keep_alive) out.append("Connection: close\r\n");
    out.append("\r\n");
    if (!head) out.append(body);
    if (!keep_alive) close_after_flush_ = true;
    schedule_flush();
  }

  void respond_error(unsigned status, std::string_view reason, std::string_view message,
                     std::string_view extra = {}) {
    nlohmann::json j = {{"error", message}, {"status", status}};
    respond(status, reason, "application/json", j.dump(), false, false, extra);
  }

  bool origin_allowed(const http::request<http::empty_body>& req) const {
    const auto origin = req[http::field::origin];
    if (origin.empty()) return true;  // native clients send none
    for (const auto& allowed : server_.options().allow_origins) {
      if (iequals(allowed, origin)) return true;
    }
    // The hub's own pages (the embedded client) are same-origin.
    const std::string self =
        std::string(server_.tls() ? "https://" : "http://") + std::string(req[http::field::host]);
    return iequals(origin, self);
  }

  // Returns true when the connection became a WebSocket.
  bool handle_request(const http::request<http::empty_body>& req) {
    const std::string_view target(req.target().data(), req.target().size());
    const size_t qmark = target.find('?');
    const std::string_view path = target.substr(0, qmark);
    const std::string_view query =
        qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;

    if (path == "/signaling") {
      server_.count_http("/signaling");
      return upgrade(req);
    }
    if (req.method() != http::verb::get && !head) {
      server_.count_http("other");
      respond_error(405, "Method Not Allowed", "only GET", "Allow: GET, HEAD\r\n");
      return false;
    }
    if (path == "/api/health") {
      server_.count_http("/api/health");
      respond(200, "OK", "application/json", server_.health_json(), head, keep_alive);
    } else if (path == "/api/signaling/stats") {
      server_.count_http("/api/signaling/stats");
      respond(200, "OK", "application/json", server_.stats_json(), head, keep_alive);
    } else if (path == "/api/ice-servers") {
      server_.count_http("/api/ice-servers");
      ice_servers(req, query, head, keep_alive);
    } else if (path == "/metrics") {
      server_.count_http("/metrics");
      respond(200, "OK", "text/plain; version=0.0.4; charset=utf-8", server_.metrics_text(), head,
              keep_alive);
    } else {
      server_.count_http("static");
      static_file(path, head, keep_alive);
    }
    return false;
  }

  void ice_servers(const http::request<http::empty_body>& req, std::string_view query, bool head,
                   bool keep_alive) {
    const auto& opt = server_.options();
    std::string peer = query_param(query, "peer");
    if (!opt.token_secret.empty()) {
      std::string token;
      const auto auth = req[http::field::authorization];
      if (auth.size() > 7 && iequals(auth.substr(0, 7), "Bearer ")) {
        token = std::string(auth.substr(7));
      } else {
        token = query_param(query, "token");
      }
      auto claims = verify_token(opt.token_secret, token, unix_ms() / 1000);
      if (!claims) {
        server_.count_rejection("unauthorized");
        respond_error(401, "Unauthorized", claims.error().message, "WWW-Authenticate: Bearer\r\n");
        return;
      }
      if (claims->sub != "*") peer = claims->sub;
    }
    if (!peer.empty() && !is_valid_id(peer)) {
      respond_error(400, "Bad Request", "peer must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$");
      return;
    }
    respond(200, "OK", "application/json", server_.ice_servers_json(peer), head, keep_alive);
  }

  void static_file(std::string_view raw_path, bool head, bool keep_alive) {
    std::string path;
    if (!percent_decode(raw_path, path) || path.empty() || path[0] != '/' ||
        path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) {
      respond_error(400, "Bad Request", "bad path");
      return;
    }
    // Refuse any dot segment outright instead of normalising it away.
    for (size_t pos = 0; pos != std::string::npos;) {
      const size_t next = path.find('/', pos + 1);
      const std::string_view segment = std::string_view(path).substr(
          pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
      if (segment == ".." || segment == ".") {
        server_.count_rejection("path_traversal");
        respond_error(403, "Forbidden", "path traversal refused");
        return;
      }
      pos = next;
    }
    if (path.back() == '/') path += "index.html";
    const auto& root = server_.options().web_root;
    if (root.empty()) {
      const WebAsset* asset = server_.find_asset(path);
      if (!asset) {
        respond_error(404, "Not Found", "not found");
        return;
      }
      respond(200, "OK", content_type_for(path),
              std::string_view(reinterpret_cast<const char*>(asset->data), asset->size), head,
              keep_alive);
      return;
    }
    namespace fs = std::filesystem;
    std::error_code fec;
    const fs::path base = fs::canonical(root, fec);
    const fs::path file = fs::weakly_canonical(base / fs::path(path.substr(1)), fec);
    const std::string base_str = base.string() + "/";
    if (fec || file.string().compare(0, base_str.size(), base_str) != 0) {
      server_.count_rejection("path_traversal");
      respond_error(403, "Forbidden", "path outside the web root refused");
      return;
    }
    if (!fs::is_regular_file(file, fec) || fs::file_size(file, fec) > (64u << 20)) {
      respond_error(404, "Not Found", "not found");
      return;
    }
    std::ifstream in(file, std::ios::binary);
    const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    respond(200, "OK", content_type_for(path), body, head, keep_alive);
  }

  bool upgrade(const http::request<http::empty_body>& req) {
    const auto key = req[http::field::sec_websocket_key];
    if (req.method() != http::verb::get || !has_token(req[http::field::upgrade], "websocket") ||
        !has_token(req[http::field::connection], "upgrade") || key.empty()) {
      server_.count_rejection("bad_upgrade");
      respond_error(400, "Bad Request", "expected a WebSocket upgrade (RFC 6455)");
      return false;
    }
    if (req[http::field::sec_websocket_version] != "13") {
      server_.count_rejection("bad_upgrade");
      respond_error(426, "Upgrade Required", "WebSocket version 13 only",
                    "Sec-WebSocket-Version: 13\r\n");
      return false;
    }
    auto decoded = base::base64_decode(std::string_view(key.data(), key.size()));
    if (!decoded || decoded->size() != 16) {
      server_.count_rejection("bad_upgrade");
      respond_error(400, "Bad Request", "bad Sec-WebSocket-Key");
      return false;
    }
    if (!origin_allowed(req)) {
      server_.count_rejection("origin_forbidden");
      respond_error(403, "Forbidden", "origin not allowed");
      return false;
    }
    if (server_.websocket_count() >= server_.options().max_connections || server_.shutting_down()) {
      server_.count_rejection("too_many_connections");
      respond_error(503, "Service Unavailable", "the hub holds its maximum number of connections",
                    "Retry-After: 5\r\n");
      return false;
    }
    out_.append(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    out_.append("Sec-WebSocket-Accept: ")
        .append(websocket_accept(std::string_view(key.data(), key.size())))
        .append("\r\n\r\n");
    phase_ = Phase::WebSocket;
    counted_ = true;
    server_.websocket_opened();
    limiter_ = RateLimiter(server_.options().max_messages_per_second, server_.now());
    schedule_flush();
    return true;
  }

  // --- WebSocket sink ---
  bool on_text(std::string_view text) override {
    if (phase_ != Phase::WebSocket) return true;
    Server& s = server_;
    Counters& c = s.counters();
    ++c.received_total;
    ClientMessage& m = s.message_scratch();
    MessageError error;
    const uint32_t rate = s.options().max_messages_per_second;
    if (!limiter_.allow(s.now())) {
      // A quiet second forgives earlier drops; a sustained flood is cut off.
      if (s.now() - last_drop_ms_ > 1000) drops_ = 0;
      last_drop_ms_ = s.now();
      ++drops_;
      const bool ok = parse_client_message(text, m, error);
      s.count_rejection("rate_limited");
      send_error("rate_limited",
                 "more than " + std::to_string(rate) + " messages per second; message dropped",
                 ok ? m.ref : error.ref);
      if (drops_ > 2 * static_cast<uint64_t>(rate)) {
        s.count_rejection("flooding");
        close_ws(close_code::kPolicy, "flooding", "closed");
        return false;
      }
      return true;
    }
    if (!parse_client_message(text, m, error)) {
      ++c.received_invalid;
      s.count_rejection(error.code);
      send_error(error.code, error.message, error.ref);
      return true;
    }
    ++c.received[static_cast<size_t>(m.type)];
    switch (m.type) {
      case MessageType::Heartbeat: {
        std::string ack = R"({"type":"heartbeat-ack","time":)" + std::to_string(unix_ms());
        if (!m.ref.empty()) ack.append(",\"ref\":").append(m.ref);
        ack.push_back('}');
        send_text(ack);
        break;
      }
      case MessageType::Join:
        join(m);
        break;
      case MessageType::Leave:
        if (!room_) {
          reject("not_joined", "join a room first", m.ref);
        } else {
          leave_room("left");
        }
        break;
      case MessageType::Offer:
      case MessageType::Answer:
      case MessageType::Candidate:
      case MessageType::Relay:
        forward(m, text);
        break;
      case MessageType::Announce:
        announce(m);
        break;
      case MessageType::Broadcast:
        broadcast(m, text);
        break;
    }
    return phase_ == Phase::WebSocket;
  }

  bool on_binary(std::string_view) override {
    if (phase_ != Phase::WebSocket) return true;
    server_.count_rejection("binary_frame");
    close_ws(close_code::kUnsupportedData, "binary frames are not supported", "closed");
    return false;
  }

  bool on_ping(std::string_view payload) override {
    if (phase_ != Phase::WebSocket) return true;
    append_frame(out_, WsOpcode::Pong, payload);
    schedule_flush();
    return true;
  }

  bool on_pong(std::string_view) override { return true; }

  bool on_close(uint16_t code, std::string_view) override {
    if (phase_ == Phase::WebSocket) {
      // The client started the close: echo its code and go.
      leave_room("closed");
      if (code == 1005) {
        append_frame(out_, WsOpcode::Close, {});
      } else {
        append_close_frame(out_, code, {});
      }
      begin_closing();
    } else if (phase_ == Phase::Closing) {
      // The answer to our close frame.
      if (!writing_ && out_.empty()) close_now();
    }
    return false;
  }

  // --- protocol ---
  void error_json(std::string& e, std::string_view code, std::string_view message,
                  std::string_view ref, std::string_view to) {
    e.append(R"({"type":"error","code":")").append(code).append(R"(","message":)");
    append_json_string(e, message);
    if (!to.empty()) {
      e.append(",\"to\":");
      append_json_string(e, to);
    }
    if (!ref.empty()) e.append(",\"ref\":").append(ref);
    e.push_back('}');
  }

  void send_error(std::string_view code, std::string_view message, std::string_view ref,
                  std::string_view to = {}) {
    std::string e;
    error_json(e, code, message, ref, to);
    send_text(e);
  }

  void reject(const char* code, std::string_view message, std::string_view ref,
              std::string_view to = {}) {
    server_.count_rejection(code, room_ ? std::string_view(room_->id) : std::string_view(), peer_);
    send_error(code, message, ref, to);
  }

  void reject_join(const ClientMessage& m, const char* code, std::string_view message,
                   std::string_view ref) {
    server_.count_rejection(code, m.room, m.peer, true);
    send_error(code, message, ref, {});
  }

  void join(const ClientMessage& m) {
    const auto& opt = server_.options();
    if (room_) return reject_join(m, "already_joined", "send leave first", m.ref);
    if (!opt.token_secret.empty()) {
      auto status = authorize_join(opt.token_secret, m.token, m.room, m.peer, unix_ms() / 1000);
      if (!status) return reject_join(m, "unauthorized", status.error().message, m.ref);
    }
    Room* room = server_.find_room(m.room);
    if (room) {
      auto held = room->peers.find(m.peer);
      if (held != room->peers.end()) {
        Connection* old = held->second;
        if (!m.resume.empty() && m.resume.size() == old->resume_.size() &&
            CRYPTO_memcmp(m.resume.data(), old->resume_.data(), m.resume.size()) == 0) {
          return take_over(*room, *old, m);
        }
        return reject_join(m, "id_taken", "peer id is held by a live connection", m.ref);
      }
      if (room->peers.size() >= opt.max_peers_per_room) {
        return reject_join(m, "room_full", "the room has its maximum number of peers", m.ref);
      }
    } else {
      if (server_.room_count() >= opt.max_rooms) {
        return reject_join(m, "too_many_rooms", "the hub holds its maximum number of rooms", m.ref);
      }
      room = server_.create_room(m.room);
    }
    become(*room, m.peer, m.has_metadata ? std::string(m.metadata) : std::string("{}"),
           random_hex(16));
    send_welcome(false, m.ref);
    server_.audit("hub_join", room->id, peer_, "");
    std::string joined =
        R"({"type":"peer-joined","peer":")" + peer_ + R"(","metadata":)" + metadata_ + "}";
    for (auto& [id, other] : room->peers) {
      if (other != this) other->send_text(joined);
    }
  }

  // Resume: this connection takes the old one's place; the others see nothing.
  void take_over(Room& room, Connection& old, const ClientMessage& m) {
    std::string metadata = m.has_metadata ? std::string(m.metadata) : old.metadata_;
    const bool changed = metadata != old.metadata_;
    std::string secret = std::move(old.resume_);
    old.room_ = nullptr;
    old.peer_.clear();
    server_.peer_removed();
    room.peers.erase(m.peer);
    old.close_ws(close_code::kReplaced, "replaced", "closed");
    become(room, m.peer, std::move(metadata), std::move(secret));
    send_welcome(true, m.ref);
    server_.audit("hub_join", room.id, peer_, "resume", true);
    if (changed) announce_to_others();
  }

  void become(Room& room, const std::string& peer, std::string metadata, std::string secret) {
    room_ = &room;
    peer_ = peer;
    metadata_ = std::move(metadata);
    resume_ = std::move(secret);
    from_prefix_ = R"({"from":")" + peer_ + "\",";
    room.peers.emplace(peer_, this);
    server_.peer_added();
  }

  void send_welcome(bool resumed, std::string_view ref) {
    const auto& opt = server_.options();
    std::string w =
        R"({"type":"welcome","room":")" + room_->id + R"(","peer":")" + peer_ + R"(","peers":[)";
    bool first = true;
    for (auto& [id, other] : room_->peers) {
      if (other == this) continue;
      if (!first) w.push_back(',');
      first = false;
      w.append(R"({"peer":")").append(id).append(R"(","metadata":)").append(other->metadata_);
      w.push_back('}');
    }
    w.append(R"(],"resume":")").append(resume_).append(R"(","resumed":)");
    w.append(resumed ? "true" : "false");
    w.append(",\"heartbeat_interval\":").append(std::to_string(opt.heartbeat_interval_ms));
    w.append(",\"peer_timeout\":").append(std::to_string(opt.peer_timeout_ms));
    w.append(",\"limits\":{\"max_frame\":").append(std::to_string(opt.max_frame));
    w.append(",\"messages_per_second\":").append(std::to_string(opt.max_messages_per_second));
    w.append(",\"peers_per_room\":").append(std::to_string(opt.max_peers_per_room));
    w.append("}");
    if (!ref.empty()) w.append(",\"ref\":").append(ref);
    w.push_back('}');
    send_text(w);
  }

  void leave_room(std::string_view reason) {
    if (!room_) return;
    Room* room = room_;
    room_ = nullptr;
    room->peers.erase(peer_);
    server_.peer_removed();
    server_.audit("hub_leave", room->id, peer_, reason);
    if (!server_.shutting_down()) {
      std::string left = R"({"type":"peer-left","peer":")" + peer_ + R"(","reason":")" +
                         std::string(reason) + "\"}";
      for (auto& [id, other] : room->peers) other->send_text(left);
    }
    server_.drop_room_if_empty(room);
    peer_.clear();
    std::string().swap(metadata_);
    std::string().swap(from_prefix_);
    std::string().swap(resume_);
  }

  void forward(const ClientMessage& m, std::string_view text) {
    if (!room_) return reject("not_joined", "join a room first", m.ref);
    if (m.type == MessageType::Relay && server_.options().no_relay) {
      return reject("relay_disabled", "this hub does not relay", m.ref);
    }
    auto it = room_->peers.find(m.to);
    if (it == room_->peers.end()) {
      return reject("target_offline", "the target peer is not in this room", m.ref, m.to);
    }
    const size_t brace = text.find('{');
    it->second->send_text(from_prefix_, text.substr(brace + 1));
    auto& c = server_.counters();
    ++c.forwarded[static_cast<size_t>(m.type)];
    ++c.forwarded_total;
  }

  void broadcast(const ClientMessage& m, std::string_view text) {
    if (!room_) return reject("not_joined", "join a room first", m.ref);
    const std::string_view rest = text.substr(text.find('{') + 1);
    auto& c = server_.counters();
    for (auto& [id, other] : room_->peers) {
      if (other == this) continue;
      other->send_text(from_prefix_, rest);
      ++c.forwarded[static_cast<size_t>(MessageType::Broadcast)];
      ++c.forwarded_total;
    }
  }

  void announce(const ClientMessage& m) {
    if (!room_) return reject("not_joined", "join a room first", m.ref);
    metadata_ = std::string(m.metadata);
    announce_to_others();
  }

  void announce_to_others() {
    std::string a =
        R"({"type":"peer-announced","peer":")" + peer_ + R"(","metadata":)" + metadata_ + "}";
    auto& c = server_.counters();
    for (auto& [id, other] : room_->peers) {
      if (other == this) continue;
      other->send_text(a);
      ++c.forwarded[static_cast<size_t>(MessageType::Announce)];
      ++c.forwarded_total;
    }
  }

  // --- closing and writing ---
  // Sends a close frame, leaves the room (others see `leave_reason`), flushes, then
  // half-closes and waits (bounded) for the client to close its side.
  void close_ws(uint16_t code, std::string_view reason, std::string_view leave_reason) {
    if (phase_ != Phase::WebSocket) return;
    leave_room(leave_reason);
    append_close_frame(out_, code, reason);
    begin_closing();
  }

  void begin_closing() {
    phase_ = Phase::Closing;
    close_after_flush_ = true;
    closing_deadline_ = server_.now() + kCloseGraceMs;
    schedule_flush();
  }

  void schedule_flush() {
    if (flush_pending_ || writing_) return;
    flush_pending_ = true;
    server_.mark_dirty(shared_from_this());
  }

  void start_write() {
    if (writing_ || phase_ == Phase::Closed) return;
    if (out_.empty()) {
      if (close_after_flush_) finish_close();
      return;
    }
    wrote_ = true;
    if (!tls_) {
      // Plain socket: write now; only a full socket buffer waits for EPOLLOUT, with
      // the rest moved to inflight_ so that out_ keeps collecting.
      size_t sent = 0;
      if (!send_direct(out_, sent)) return;
      if (sent == out_.size()) {
        out_.clear();  // the capacity stays until a quiet sweep (trim_if_quiet)
        if (close_after_flush_) finish_close();
        return;
      }
      inflight_.assign(out_, sent);
      out_.clear();
      writing_ = true;
      return;
    }
    inflight_.swap(out_);
    writing_ = true;
    asio::async_write(
        *tls_, asio::buffer(inflight_),
        [self = shared_from_this()](const error_code& ec, size_t) { self->on_written(ec); });
  }

  // Sends buf from `sent` on until done or EAGAIN. False when the socket failed
  // (the connection is closed then).
  bool send_direct(const std::string& buf, size_t& sent) {
    while (sent < buf.size()) {
      const ssize_t n = ::send(fd_, buf.data() + sent, buf.size() - sent, MSG_NOSIGNAL);
      if (n >= 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      writing_ = false;
      close_now();
      return false;
    }
    return true;
  }

  // EPOLLOUT while a plain write waits.
  void continue_write() {
    size_t sent = 0;
    if (!send_direct(inflight_, sent)) return;
    if (sent < inflight_.size()) {
      inflight_.erase(0, sent);
      return;
    }
    writing_ = false;
    std::string().swap(inflight_);
    if (out_.empty()) {
      if (close_after_flush_) finish_close();
      return;
    }
    start_write();
  }

  void on_written(const error_code& ec) {
    writing_ = false;
    if (phase_ == Phase::Closed) return;
    if (ec) {
      close_now();
      return;
    }
    inflight_.clear();
    if (!out_.empty()) {
      start_write();
      return;
    }
    if (inflight_.capacity() > kKeepBufferBytes) std::string().swap(inflight_);
    if (out_.capacity() > kKeepBufferBytes) std::string().swap(out_);
    if (close_after_flush_) finish_close();
  }

  void finish_close() {
    if (phase_ == Phase::Http) {
      phase_ = Phase::Closing;
      closing_deadline_ = server_.now() + kCloseGraceMs;
    }
    if (fd_ >= 0) {
      if (::shutdown(fd_, SHUT_WR) != 0) close_now();
      return;
    }
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) close_now();
  }

  Server& server_;
  tcp::socket socket_;                // TLS connections only
  int fd_ = -1;                       // plain connections only
  std::shared_ptr<Connection> self_;  // a plain connection owns itself while open
  std::unique_ptr<ssl::stream<tcp::socket&>> tls_;
  std::unique_ptr<HttpState> http_;
  std::string tls_buffer_;
  WsDecoder decoder_;
  std::string out_;
  std::string inflight_;
  Room* room_ = nullptr;
  std::string peer_;
  std::string metadata_;
  std::string resume_;
  std::string from_prefix_;
  RateLimiter limiter_;
  int64_t last_activity_ = 0;
  int64_t closing_deadline_ = 0;
  int64_t last_drop_ms_ = 0;
  uint64_t drops_ = 0;
  Phase phase_ = Phase::Handshake;
  bool writing_ = false;
  bool flush_pending_ = false;
  bool close_after_flush_ = false;
  bool overflow_ = false;
  bool counted_ = false;
  bool wrote_ = false;  // since the last sweep

 public:
  size_t index_ = 0;  // position in Server::all_
};

void Server::add(Connection* c) {
  c->index_ = all_.size();
  all_.push_back(c);
}

void Server::remove(Connection* c) {
  const size_t i = c->index_;
  if (i < all_.size() && all_[i] == c) {
    all_[i] = all_.back();
    all_[i]->index_ = i;
    all_.pop_back();
  }
}

void Server::accept() {
  acceptor_.async_wait(tcp::acceptor::wait_read, [this](const error_code& ec) {
    if (shutting_down_ || ec == asio::error::operation_aborted) return;
    touch_clock();
    for (int i = 0; !ec && i < kAcceptBatch; ++i) {
      const int fd =
          ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        start_connection(fd);
        if (shutting_down_) return;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // The connection went away before we took it.
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      // Out of descriptors (EMFILE/ENFILE) or memory: back off a little instead of
      // spinning on a listening socket that stays readable.
      RTCMESH_LOG(Warn, "hub", "accept: " << std::strerror(errno));
      accept_retry_timer_.expires_after(std::chrono::milliseconds(50));
      accept_retry_timer_.async_wait([this](const error_code& tec) {
        if (!tec) accept();
      });
      return;
    }
    if (ec) {
      RTCMESH_LOG(Warn, "hub", "accept wait: " << ec.message());
      accept_retry_timer_.expires_after(std::chrono::milliseconds(50));
      accept_retry_timer_.async_wait([this](const error_code& tec) {
        if (!tec) accept();
      });
      return;
    }
    accept();
  });
}

void Server::start_connection(int fd) {
  if (!tls_) {
    std::make_shared<Connection>(*this, fd)->start(nullptr);
    return;
  }
  tcp::socket socket(io_);
  error_code ec;
  socket.assign(protocol_, fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  std::make_shared<Connection>(*this, std::move(socket))->start(tls_);
}

void Server::arm_poll() {
  poll_wait_.async_wait(asio::posix::descriptor_base::wait_read, [this](const error_code& ec) {
    if (!ec) poll();
  });
}

// One turn over the plain sockets: take what epoll reports, read each ready socket
// until drained (or its budget), handle every message, then write each connection's
// output with one send. Asio then waits on the set again, running timers, TLS and
// accepts in between.
void Server::poll() {
  touch_clock();
  in_poll_ = true;
  carrying_.swap(carry_);
  for (auto& c : carrying_) c->on_carried();
  carrying_.clear();
  std::array<epoll_event, kPollEvents> events;
  const int n = ::epoll_wait(poll_wait_.native_handle(), events.data(), kPollEvents, 0);
  // Connections closed during the turn stay allocated in graveyard_ until its end.
  for (int i = 0; i < n; ++i) {
    static_cast<Connection*>(events[static_cast<size_t>(i)].data.ptr)
        ->on_events(events[static_cast<size_t>(i)].events);
  }
  in_poll_ = false;
  flush_now();
  graveyard_.clear();
  if (n == kPollEvents || !carry_.empty()) {
    asio::post(io_, [this] { poll(); });
  } else {
    arm_poll();
  }
}

void Server::sweep() {
  const int64_t interval =
      std::clamp<int64_t>(std::min(opt_.peer_timeout_ms, int64_t{4000}) / 4, 10, 1000);
  sweep_timer_.expires_after(std::chrono::milliseconds(interval));
  sweep_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    touch_clock();
    std::vector<std::shared_ptr<Connection>> expired;
    for (Connection* c : all_) {
      c->trim_if_quiet();
      const auto phase = c->phase();
      if (phase == Connection::Phase::Closing) {
        if (now_ > c->closing_deadline()) expired.push_back(c->shared_from_this());
      } else if (phase != Connection::Phase::Closed &&
                 now_ - c->last_activity() > opt_.peer_timeout_ms) {
        expired.push_back(c->shared_from_this());
      }
    }
    for (auto& c : expired) {
      if (c->phase() == Connection::Phase::Closing) {
        c->close_now();
      } else {
        c->time_out();
      }
    }
    sweep();
  });
}

void Server::flush_dirty() {
  flush_posted_ = false;
  flush_now();
}

void Server::flush_now() {
  flushing_.swap(dirty_);
  for (auto& c : flushing_) c->flush();
  flushing_.clear();
}

void Server::shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  RTCMESH_LOG(Info, "hub", "shutting down");
  error_code ec;
  acceptor_.close(ec);
  accept_retry_timer_.cancel();
  touch_clock();
  std::vector<std::shared_ptr<Connection>> everyone;
  everyone.reserve(all_.size());
  for (Connection* c : all_) everyone.push_back(c->shared_from_this());
  for (auto& c : everyone) c->say_shutdown();
  shutdown_deadline_ = now_ + kCloseGraceMs;
  wait_for_drain();
}

void Server::wait_for_drain() {
  touch_clock();
  if (all_.empty() || now_ >= shutdown_deadline_) {
    sweep_timer_.cancel();
    std::vector<std::shared_ptr<Connection>> rest;
    for (Connection* c : all_) rest.push_back(c->shared_from_this());
    for (auto& c : rest) c->close_now();
    io_.stop();
    return;
  }
  shutdown_timer_.expires_after(std::chrono::milliseconds(20));
  shutdown_timer_.async_wait([this](const error_code& ec) {
    if (!ec) wait_for_drain();
  });
}

std::string Server::stats_json() const {
  nlohmann::json rooms = nlohmann::json::array();
  std::vector<const Room*> sorted;
  for (const auto& [id, room] : rooms_) sorted.push_back(room.get());
  std::sort(sorted.begin(), sorted.end(),
            [](const Room* a, const Room* b) { return a->id < b->id; });
  const bool hide_peers = !opt_.token_secret.empty();
  for (const Room* room : sorted) {
    nlohmann::json r = {{"roomId", room->id}, {"peerCount", room->peers.size()}};
    if (!hide_peers) {
      std::vector<std::string> peers;
      for (const auto& [id, c] : room->peers) peers.push_back(id);
      std::sort(peers.begin(), peers.end());
      r["peers"] = peers;
    }
    rooms.push_back(std::move(r));
  }
  nlohmann::json rejected = nlohmann::json::object();
  for (const auto& [reason, n] : counters_.rejections) rejected[reason] = n;
  nlohmann::json j = {{"totalRooms", rooms_.size()},
                      {"totalPeers", peer_count_},
                      {"connections", websocket_count_},
                      {"rooms", std::move(rooms)},
                      {"messagesReceived", counters_.received_total},
                      {"messagesForwarded", counters_.forwarded_total},
                      {"rejected", std::move(rejected)}};
  return j.dump();
}

std::string Server::ice_servers_json(std::string_view peer) const {
  nlohmann::json servers = nlohmann::json::array();
  const int64_t now_s = unix_ms() / 1000;
  int64_t expires_at = now_s + opt_.turn_ttl_seconds;
  if (!opt_.stun_urls.empty()) servers.push_back({{"urls", opt_.stun_urls}});
  if (!opt_.turn_urls.empty()) {
    const TurnCredential cred =
        turn_credential(opt_.turn_secret, peer, now_s, opt_.turn_ttl_seconds);
    expires_at = cred.expires_at;
    servers.push_back(
        {{"urls", opt_.turn_urls}, {"username", cred.username}, {"credential", cred.credential}});
  }
  nlohmann::json j = {{"iceServers", std::move(servers)},
                      {"ttl", opt_.turn_ttl_seconds},
                      {"expiresAt", expires_at}};
  return j.dump();
}

// Many idle connections need many descriptors: take the hard limit, and as root
// raise the hard limit itself when it is below what --max-connections asks for.
void raise_fd_limit(size_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t need = static_cast<rlim_t>(wanted) + 256;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < need) {
    rlimit raised{need, need};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return;
  }
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < need) {
    RTCMESH_LOG(Info, "hub",
                "open-file limit " << limit.rlim_cur << " is below --max-connections " << wanted);
  }
}

std::string format_host(const asio::ip::address& address) {
  return address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
}

}  // namespace

std::string validate_options(const HubOptions& o) {
  if (o.cert_file.empty() != o.key_file.empty()) return "--cert and --key go together";
  if (!o.turn_urls.empty() && o.turn_secret.empty()) return "--turn-url needs --turn-secret";
  if (o.max_frame < 128) return "--max-frame must be at least 128";
  if (o.max_frame > (64u << 20)) return "--max-frame must be at most 67108864";
  if (o.max_peers_per_room == 0) return "--max-peers-per-room must be at least 1";
  if (o.max_rooms == 0) return "--max-rooms must be at least 1";
  if (o.max_connections == 0) return "--max-connections must be at least 1";
  if (o.max_write_queue < 1024) return "--max-write-queue must be at least 1024";
  if (o.peer_timeout_ms < 10) return "--peer-timeout must be at least 10 ms";
  if (o.heartbeat_interval_ms < 1) return "--heartbeat-interval must be positive";
  if (o.turn_ttl_seconds < 1) return "--turn-ttl must be positive";
  if (!o.web_root.empty() && !std::filesystem::is_directory(o.web_root)) {
    return "--web-root " + o.web_root + " is not a directory";
  }
  for (const auto& url : o.turn_urls) {
    if (url.rfind("turn:", 0) != 0 && url.rfind("turns:", 0) != 0) {
      return "--turn-url must start with turn: or turns: (" + url + ")";
    }
  }
  for (const auto& url : o.stun_urls) {
    if (url.rfind("stun:", 0) != 0 && url.rfind("stuns:", 0) != 0) {
      return "--stun-url must start with stun: or stuns: (" + url + ")";
    }
  }
  return {};
}

int run_hub(const HubOptions& options) {
  if (const std::string problem = validate_options(options); !problem.empty()) {
    std::fprintf(stderr, "rtcmesh hub: %s\n", problem.c_str());
    return 2;
  }
  raise_fd_limit(options.max_connections);
  asio::io_context io(1);

  std::unique_ptr<ssl::context> tls;
  if (!options.cert_file.empty()) {
    tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    error_code ec;
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls->use_certificate_chain_file(options.cert_file, ec);
    if (ec) {
      std::fprintf(stderr, "rtcmesh hub: cannot load --cert %s: %s\n", options.cert_file.c_str(),
                   ec.message().c_str());
      return 2;
    }
    tls->use_private_key_file(options.key_file, ssl::context::pem, ec);
    if (ec) {
      std::fprintf(stderr, "rtcmesh hub: cannot load --key %s: %s\n", options.key_file.c_str(),
                   ec.message().c_str());
      return 2;
    }
  }

  error_code ec;
  tcp::resolver resolver(io);
  const auto results =
      resolver.resolve(options.host, std::to_string(options.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    std::fprintf(stderr, "rtcmesh hub: cannot resolve %s: %s\n", options.host.c_str(),
                 ec ? ec.message().c_str() : "no address");
    return 2;
  }
  Server server(options, io, tls.get());
  const tcp::endpoint endpoint = results.begin()->endpoint();
  if (auto lec = server.listen(endpoint)) {
    std::fprintf(stderr, "rtcmesh hub: cannot listen on %s:%u: %s\n",
                 format_host(endpoint.address()).c_str(), options.port, lec.message().c_str());
    return 1;
  }
  const tcp::endpoint bound = server.local_endpoint();
  const std::string authority = format_host(bound.address()) + ":" + std::to_string(bound.port());
  const bool secure = tls != nullptr;
  server.start();
  std::fprintf(stderr, "rtcmesh hub: listening on %s://%s/ (signaling %s://%s/signaling)\n",
               secure ? "https" : "http", authority.c_str(), secure ? "wss" : "ws",
               authority.c_str());
  if (!options.startup_note.empty())
    std::fprintf(stderr, "rtcmesh hub: %s\n", options.startup_note.c_str());
  std::fflush(stderr);
  io.run();
  return 0;
}

}  // namespace rtcmesh::hub
