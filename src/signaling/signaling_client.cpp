#include "signaling/signaling_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <future>
#include <random>
#include <thread>

#include "base/log.hpp"
#include "rtcmesh/version.hpp"

namespace rtcmesh::signaling {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

std::string HubUrl::http_origin() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::string(tls ? "https://" : "http://") + h + ":" + port;
}

bool HubUrl::loopback_host() const {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Result<HubUrl> parse_hub_url(std::string_view url) {
  HubUrl out;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return make_error("hub URL needs ws:// or wss://");
  std::string scheme(url.substr(0, scheme_end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
  if (scheme == "ws" || scheme == "http") {
    out.tls = false;
  } else if (scheme == "wss" || scheme == "https") {
    out.tls = true;
  } else {
    return make_error("hub URL scheme must be ws:// or wss://, not " + scheme + "://");
  }
  auto rest = url.substr(scheme_end + 3);
  auto slash = rest.find_first_of("/?");
  auto authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target = "/" + out.target;
  if (authority.find('@') != std::string_view::npos)
    return make_error("hub URL must not hold credentials");
  if (authority.empty()) return make_error("hub URL has no host");
  std::string_view port;
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return make_error("hub URL: unterminated [IPv6] host");
    out.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return make_error("hub URL: junk after ]");
      port = after.substr(1);
    }
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      out.host = std::string(authority.substr(0, colon));
    } else {
      out.host = std::string(authority);
    }
  }
  if (out.host.empty()) return make_error("hub URL has no host");
  if (port.empty()) {
    out.port = out.tls ? "443" : "80";
  } else {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535) {
      return make_error("hub URL: bad port '" + std::string(port) + "'");
    }
    out.port = std::string(port);
  }
  return out;
}

std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds interval, int attempt,
                                          std::chrono::milliseconds max, double jitter01) {
  double base = static_cast<double>(interval.count()) * std::pow(2.0, std::min(attempt, 20));
  base = std::min(base, static_cast<double>(max.count()));
  double scaled = base * (0.75 + 0.5 * std::clamp(jitter01, 0.0, 1.0));
  return std::chrono::milliseconds(static_cast<int64_t>(std::max(scaled, 1.0)));
}

const char* to_string(HubState state) {
  switch (state) {
    case HubState::Connected:
      return "connected";
    case HubState::Disconnected:
      return "disconnected";
    case HubState::Reconnecting:
      return "reconnecting";
  }
  return "?";
}

// Everything below runs on the client's own io_context thread, except the
// constructor, start(), send() and stop(), which only post to it.
struct Client::Impl : std::enable_shared_from_this<Impl> {
  Impl(ClientOptions o, ClientCallbacks c)
      : options(std::move(o)),
        callbacks(std::move(c)),
        tls(ssl::context::tls_client),
        backoff_timer(io),
        wake_writer(io),
        heartbeat_timer(io) {}

  ClientOptions options;
  ClientCallbacks callbacks;
  HubUrl url;
  asio::io_context io;
  ssl::context tls;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::promise<void> finished;

  // io-thread state
  bool stopping = false;
  bool fatal = false;
  bool joined = false;
  uint64_t generation = 0;  // one per socket
  std::string resume;
  std::chrono::milliseconds heartbeat_interval{30000};
  std::chrono::milliseconds peer_timeout{60000};
  Clock::time_point last_received;
  std::deque<std::string> out;
  bool writer_idle = true;
  std::function<void()> close_socket;  // closes the current socket, if any
  asio::steady_timer backoff_timer;
  asio::steady_timer wake_writer;
  asio::steady_timer heartbeat_timer;
  std::mt19937_64 rng{std::random_device{}()};

  void error(const std::string& text) {
    RTCMESH_LOG(Info, "signaling", text);
    if (callbacks.on_error) callbacks.on_error(text);
  }
  void state(HubState s) {
    if (callbacks.on_state) callbacks.on_state(s);
  }

  awaitable<void> run();
  template <class Stream>
  awaitable<void> session(std::shared_ptr<Stream> ws, uint64_t gen);
  template <class Stream>
  awaitable<void> writer(std::shared_ptr<Stream> ws, uint64_t gen);
  awaitable<void> heartbeat(uint64_t gen);
  awaitable<std::optional<std::string>> fetch_ice_servers();
  template <class Stream>
  awaitable<std::optional<std::string>> http_get(Stream& stream, const std::string& target);
  void handle(const std::string& text, uint64_t gen);
  nlohmann::json join_message() const;
};

nlohmann::json Client::Impl::join_message() const {
  nlohmann::json j{
      {"type", "join"}, {"id", "join"}, {"room", options.room}, {"peer", options.peer}};
  if (!options.metadata.is_null()) j["metadata"] = options.metadata;
  if (!options.token.empty()) j["token"] = options.token;
  if (!resume.empty()) j["resume"] = resume;
  return j;
}

template <class Stream>
awaitable<std::optional<std::string>> Client::Impl::http_get(Stream& stream,
                                                             const std::string& target) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, rtcmesh::kAgent);
  if (!options.token.empty()) req.set(http::field::authorization, "Bearer " + options.token);
  co_await http::async_write(stream, req, use_awaitable);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  co_await http::async_read(stream, buffer, parser, use_awaitable);
  auto& res = parser.get();
  if (res.result() != http::status::ok) {
    error("GET /api/ice-servers: HTTP " + std::to_string(res.result_int()));
    co_return std::nullopt;
  }
  co_return res.body();
}

awaitable<std::optional<std::string>> Client::Impl::fetch_ice_servers() {
  std::string target = "/api/ice-servers?peer=" + options.peer;
  try {
    tcp::resolver resolver(io);
    auto endpoints = co_await resolver.async_resolve(url.host, url.port, use_awaitable);
    if (url.tls) {
      beast::ssl_stream<beast::tcp_stream> stream(io, tls);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
      co_await beast::get_lowest_layer(stream).async_connect(endpoints, use_awaitable);
      SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());
      if (options.verify_tls) stream.set_verify_callback(ssl::host_name_verification(url.host));
      co_await stream.async_handshake(ssl::stream_base::client, use_awaitable);
      auto body = co_await http_get(stream, target);
      beast::error_code ignored;
      beast::get_lowest_layer(stream).socket().close(ignored);
      co_return body;
    }
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    co_await stream.async_connect(endpoints, use_awaitable);
    auto body = co_await http_get(stream, target);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return body;
  } catch (const std::exception& e) {
    error(std::string("GET /api/ice-servers failed: ") + e.what());
  }
  co_return std::nullopt;
}

void Client::Impl::handle(const std::string& text, uint64_t gen) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    error("hub sent a malformed message (ignored)");
    return;
  }
  const auto type = j["type"].get<std::string>();
  if (type == "welcome") {
    joined = true;
    if (j.contains("resume") && j["resume"].is_string()) resume = j["resume"].get<std::string>();
    auto ms = [&](const char* key, std::chrono::milliseconds fallback) {
      if (j.contains(key) && j[key].is_number_integer()) {
        auto v = j[key].get<int64_t>();
        if (v >= 100 && v <= 3600000) return std::chrono::milliseconds(v);
      }
      return fallback;
    };
    heartbeat_interval = ms("heartbeat_interval", heartbeat_interval);
    peer_timeout = ms("peer_timeout", peer_timeout);
    asio::co_spawn(io, heartbeat(gen), asio::detached);
  } else if (type == "error" && j.contains("ref") && j["ref"] == "join") {
    std::string code =
        j.contains("code") && j["code"].is_string() ? j["code"].get<std::string>() : "?";
    std::string message = "hub refused join: " + code;
    if (j.contains("message") && j["message"].is_string())
      message += " (" + j["message"].get<std::string>() + ")";
    if (code == "unauthorized" || code == "invalid_id" || code == "bad_message") {
      fatal = true;
      if (callbacks.on_fatal) callbacks.on_fatal(message);
    } else {
      error(message + "; retrying");
    }
    if (code == "id_taken") resume.clear();
    if (close_socket) close_socket();
    return;
  }
  if (callbacks.on_message) callbacks.on_message(j);
}

template <class Stream>
awaitable<void> Client::Impl::writer(std::shared_ptr<Stream> ws, uint64_t gen) {
  try {
    for (;;) {
      while (!out.empty() && gen == generation) {
        std::string message = std::move(out.front());
        out.pop_front();
        co_await ws->async_write(asio::buffer(message), use_awaitable);
      }
      if (gen != generation) co_return;
      writer_idle = true;
      wake_writer.expires_at(Clock::time_point::max());
      beast::error_code ec;
      co_await wake_writer.async_wait(asio::redirect_error(use_awaitable, ec));
      writer_idle = false;
    }
  } catch (const std::exception& e) {
    if (gen == generation && close_socket) close_socket();
  }
}

awaitable<void> Client::Impl::heartbeat(uint64_t gen) {
  while (gen == generation && !stopping) {
    heartbeat_timer.expires_after(heartbeat_interval);
    beast::error_code ec;
    co_await heartbeat_timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (gen != generation || stopping) co_return;
    // A half-open socket never errors: treat a silent hub as gone.
    if (Clock::now() - last_received > peer_timeout) {
      error("hub silent for " + std::to_string(peer_timeout.count()) + " ms; reconnecting");
      if (close_socket) close_socket();
      co_return;
    }
    out.push_back(R"({"type":"heartbeat"})");
    wake_writer.cancel();
  }
}

template <class Stream>
awaitable<void> Client::Impl::session(std::shared_ptr<Stream> ws, uint64_t gen) {
  ws->read_message_max(options.max_frame);
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds(5);
  timeouts.idle_timeout = websocket::stream_base::none();
  timeouts.keep_alive_pings = false;
  ws->set_option(timeouts);
  ws->set_option(websocket::stream_base::decorator(
      [](websocket::request_type& req) { req.set(http::field::user_agent, rtcmesh::kAgent); }));
  std::string host_header =
      url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  co_await ws->async_handshake(host_header + ":" + url.port, url.target, use_awaitable);
  beast::get_lowest_layer(*ws).expires_never();
  std::weak_ptr<Stream> weak = ws;
  close_socket = [weak] {
    if (auto s = weak.lock()) {
      beast::error_code ignored;
      beast::get_lowest_layer(*s).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(*s).socket().close(ignored);
    }
  };
  state(HubState::Connected);
  last_received = Clock::now();
  if (options.fetch_ice_servers) {
    if (auto body = co_await fetch_ice_servers()) {
      auto j = nlohmann::json::parse(*body, nullptr, false);
      if (!j.is_discarded() && j.is_object() && callbacks.on_ice_servers)
        callbacks.on_ice_servers(j);
      else if (j.is_discarded() || !j.is_object())
        error("/api/ice-servers: not a JSON object");
    }
    if (gen != generation || stopping) co_return;
  }
  out.clear();  // anything queued belonged to the previous connection
  out.push_back(join_message().dump());
  writer_idle = false;
  asio::co_spawn(io, writer(ws, gen), asio::detached);
  beast::flat_buffer buffer;
  for (;;) {
    co_await ws->async_read(buffer, use_awaitable);
    last_received = Clock::now();
    if (!ws->got_text()) {
      error("hub sent a binary frame (ignored)");
    } else {
      handle(beast::buffers_to_string(buffer.data()), gen);
    }
    buffer.consume(buffer.size());
    if (stopping || fatal) co_return;
  }
}

awaitable<void> Client::Impl::run() {
  int attempt = 0;
  bool was_connected = false;
  while (!stopping && !fatal) {
    uint64_t gen = ++generation;
    joined = false;
    try {
      tcp::resolver resolver(io);
      auto endpoints = co_await resolver.async_resolve(url.host, url.port, use_awaitable);
      if (url.tls) {
        auto ws =
            std::make_shared<websocket::stream<beast::ssl_stream<beast::tcp_stream>>>(io, tls);
        auto& lowest = beast::get_lowest_layer(*ws);
        lowest.expires_after(std::chrono::seconds(10));
        co_await lowest.async_connect(endpoints, use_awaitable);
        SSL_set_tlsext_host_name(ws->next_layer().native_handle(), url.host.c_str());
        if (options.verify_tls)
          ws->next_layer().set_verify_callback(ssl::host_name_verification(url.host));
        co_await ws->next_layer().async_handshake(ssl::stream_base::client, use_awaitable);
        was_connected = true;
        co_await session(ws, gen);
      } else {
        auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(io);
        auto& lowest = beast::get_lowest_layer(*ws);
        lowest.expires_after(std::chrono::seconds(10));
        co_await lowest.async_connect(endpoints, use_awaitable);
        was_connected = true;
        co_await session(ws, gen);
      }
    } catch (const boost::system::system_error& e) {
      if (!stopping && e.code() != websocket::error::closed)
        error(std::string("hub connection: ") + e.what());
      else if (!stopping)
        error("hub closed the connection");
    } catch (const std::exception& e) {
      if (!stopping) error(std::string("hub connection: ") + e.what());
    }
    ++generation;  // ends this socket's writer and heartbeat
    wake_writer.cancel();
    heartbeat_timer.cancel();
    if (close_socket) close_socket();
    close_socket = nullptr;
    if (joined) attempt = 0;
    joined = false;
    if (stopping || fatal) break;
    if (was_connected) state(HubState::Disconnected);
    was_connected = false;
    std::uniform_real_distribution<double> jitter(0.0, 1.0);
    auto delay = reconnect_delay(options.reconnect_interval, attempt++,
                                 options.max_reconnect_interval, jitter(rng));
    backoff_timer.expires_after(delay);
    beast::error_code ec;
    co_await backoff_timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping) break;
    state(HubState::Reconnecting);
  }
  if (fatal) state(HubState::Disconnected);
}

Client::Client(ClientOptions options, ClientCallbacks callbacks)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(callbacks))) {}

Client::~Client() {
  stop();
}

void Client::start() {
  if (impl_->thread.joinable()) return;
  auto parsed = parse_hub_url(impl_->options.url);
  if (!parsed) {
    if (impl_->callbacks.on_fatal) impl_->callbacks.on_fatal(parsed.error().message);
    return;
  }
  impl_->url = *parsed;
  if (impl_->url.tls) {
    beast::error_code ec;
    impl_->tls.set_default_verify_paths(ec);
    if (!impl_->options.ca_file.empty()) impl_->tls.load_verify_file(impl_->options.ca_file, ec);
    if (ec) RTCMESH_LOG(Warn, "signaling", "CA file: " << ec.message());
    impl_->tls.set_verify_mode(impl_->options.verify_tls ? ssl::verify_peer : ssl::verify_none);
  }
  impl_->work.emplace(impl_->io.get_executor());
  auto impl = impl_;
  asio::co_spawn(impl->io, impl->run(), asio::detached);
  impl->thread = std::thread([impl] {
    impl->io.run();
    impl->finished.set_value();
  });
}

void Client::send(const nlohmann::json& message) {
  auto impl = impl_;
  auto text = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  asio::post(impl->io, [impl, text = std::move(text)]() mutable {
    if (!impl->joined || impl->stopping) {
      RTCMESH_LOG(Debug, "signaling", "hub away; dropped " << text.substr(0, 60));
      return;
    }
    impl->out.push_back(std::move(text));
    if (impl->writer_idle) impl->wake_writer.cancel();
  });
}

void Client::stop() {
  auto impl = impl_;
  if (!impl->thread.joinable()) return;
  asio::post(impl->io, [impl] {
    if (impl->stopping) return;
    impl->stopping = true;
    impl->backoff_timer.cancel();
    impl->heartbeat_timer.cancel();
    if (impl->joined && impl->close_socket) {
      // A leave makes the others see "left" at once instead of "closed".
      impl->out.push_back(R"({"type":"leave"})");
      impl->wake_writer.cancel();
      auto timer = std::make_shared<asio::steady_timer>(impl->io, std::chrono::milliseconds(200));
      timer->async_wait([impl, timer](const beast::error_code&) {
        if (impl->close_socket) impl->close_socket();
        impl->wake_writer.cancel();
      });
    } else {
      if (impl->close_socket) impl->close_socket();
      impl->wake_writer.cancel();
    }
  });
  impl->work.reset();
  auto done = impl->finished.get_future();
  if (done.wait_for(std::chrono::seconds(3)) != std::future_status::ready) impl->io.stop();
  impl->thread.join();
}

}  // namespace rtcmesh::signaling
