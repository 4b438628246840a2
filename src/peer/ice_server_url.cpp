#include "peer/ice_server_url.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <charconv>

namespace rtcmesh::impl {

Result<IceUrl> parse_ice_url(std::string_view url) {
  IceUrl out;
  auto colon = url.find(':');
  if (colon == std::string_view::npos)
    return make_error(ErrorCode::SyntaxError, "ICE server URL without scheme: " + std::string(url));
  std::string_view scheme = url.substr(0, colon);
  std::string_view rest = url.substr(colon + 1);
  if (scheme == "stun")
    out.scheme = IceUrl::Scheme::Stun;
  else if (scheme == "stuns")
    out.scheme = IceUrl::Scheme::Stuns;
  else if (scheme == "turn")
    out.scheme = IceUrl::Scheme::Turn;
  else if (scheme == "turns")
    out.scheme = IceUrl::Scheme::Turns;
  else
    return make_error(ErrorCode::SyntaxError,
                      "unknown ICE server URL scheme '" + std::string(scheme) + "'");
  bool secure = out.scheme == IceUrl::Scheme::Stuns || out.scheme == IceUrl::Scheme::Turns;
  out.port = secure ? 5349 : 3478;
  out.transport = secure ? ice::Server::Transport::Tls : ice::Server::Transport::Udp;

  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.starts_with("//")) rest.remove_prefix(2);
  std::string_view port_text;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos)
      return make_error(ErrorCode::SyntaxError, "bad IPv6 literal in ICE server URL");
    out.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':')
        return make_error(ErrorCode::SyntaxError, "bad ICE server URL: " + std::string(url));
      port_text = rest.substr(1);
    }
  } else {
    auto c = rest.rfind(':');
    if (c != std::string_view::npos) {
      out.host = std::string(rest.substr(0, c));
      port_text = rest.substr(c + 1);
    } else {
      out.host = std::string(rest);
    }
  }
  if (out.host.empty())
    return make_error(ErrorCode::SyntaxError, "ICE server URL without host: " + std::string(url));
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return make_error(ErrorCode::SyntaxError, "bad port in ICE server URL: " + std::string(url));
    }
    out.port = static_cast<uint16_t>(port);
  }
  if (!query.empty()) {
    if (query == "transport=udp") {
      if (secure)
        return make_error(ErrorCode::NotSupportedError,
                          "turns: with transport=udp is not supported: " + std::string(url));
      out.transport = ice::Server::Transport::Udp;
    } else if (query == "transport=tcp") {
      if (!secure) out.transport = ice::Server::Transport::Tcp;
    } else {
      return make_error(ErrorCode::SyntaxError,
                        "unknown ICE server URL parameter '" + std::string(query) + "'");
    }
  }
  if (out.scheme == IceUrl::Scheme::Stuns)
    return make_error(ErrorCode::NotSupportedError, "stuns: is not supported");
  return out;
}

namespace {

Result<std::string> resolve(const std::string& host, ice::Server::Transport transport) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = transport == ice::Server::Transport::Udp ? SOCK_DGRAM : SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return make_error("cannot resolve ICE server '" + host + "': " + gai_strerror(rc));
  }
  char buf[NI_MAXHOST];
  std::string address;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) ==
        0) {
      address = buf;
      if (ai->ai_family == AF_INET) break;  // prefer IPv4 (libnice's STUN server is v4-friendly)
    }
  }
  freeaddrinfo(result);
  if (address.empty()) return make_error("cannot resolve ICE server '" + host + "'");
  return address;
}

}  // namespace

Result<std::vector<ice::Server>> resolve_ice_servers(const std::vector<IceServer>& servers) {
  std::vector<ice::Server> out;
  for (const auto& server : servers) {
    for (const auto& url : server.urls) {
      auto parsed = parse_ice_url(url);
      if (!parsed) return parsed.error();
      ice::Server s;
      bool turn = parsed->scheme == IceUrl::Scheme::Turn || parsed->scheme == IceUrl::Scheme::Turns;
      s.kind = turn ? ice::Server::Kind::Turn : ice::Server::Kind::Stun;
      s.transport = parsed->transport;
      s.port = parsed->port;
      if (turn && (server.username.empty() || server.credential.empty())) {
        return make_error(ErrorCode::InvalidAccessError,
                          "TURN server " + url + " needs a username and credential");
      }
      s.username = server.username;
      s.password = server.credential;
      auto address = resolve(parsed->host, s.transport);
      if (!address) return address.error();
      s.address = *address;
      s.host = parsed->host;  // the name TLS (turns:) checks the certificate against
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace rtcmesh::impl
