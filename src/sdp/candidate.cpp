#include "sdp/candidate.hpp"

#include <string>
#include <vector>

#include "sdp/syntax.hpp"

namespace rtcmesh::sdp {
namespace {

using detail::quote;

// A candidate line longer than this is not something any stack produces
// (Chromium's are ~150 bytes); refuse it before tokenising.
constexpr std::size_t kMaxCandidateLength = 1024;
constexpr std::size_t kMaxExtensions = 32;

Error bad(std::string_view what, std::string_view text) {
  return make_error(ErrorCode::SyntaxError,
                    "bad candidate: " + std::string(what) + ": " + quote(text));
}

}  // namespace

// RFC 8839 section 5.1:
//   candidate-attribute = "candidate" ":" foundation SP component-id SP
//                         transport SP priority SP connection-address SP port
//                         SP cand-type [SP rel-addr] [SP rel-port]
//                         *(SP cand-extension)
//   foundation   = 1*32ice-char          component-id = 1*3DIGIT (1..256)
//   transport    = "UDP" / transport-extension    priority = 1*10DIGIT
//   cand-type    = "typ" SP candidate-types
//   rel-addr     = "raddr" SP connection-address  rel-port = "rport" SP port
//   cand-extension = extension-att-name SP extension-att-value
// plus RFC 6544: "tcptype" SP ("active" / "passive" / "so").
Result<Candidate> parse_candidate(std::string_view text) {
  if (text.size() > kMaxCandidateLength) {
    return make_error(ErrorCode::SyntaxError, "bad candidate: too long (" +
                                                  std::to_string(text.size()) + " bytes, max " +
                                                  std::to_string(kMaxCandidateLength) + ")");
  }
  std::string_view body = detail::trim(text);
  if (body.substr(0, 2) == "a=") body.remove_prefix(2);
  if (body.substr(0, 10) != "candidate:") return bad("expected 'candidate:'", text);
  body.remove_prefix(10);

  const std::vector<std::string_view> f = detail::split_ws(body);
  if (f.size() < 8) return bad("too few fields", text);

  Candidate c;
  if (!detail::is_ice_chars(f[0], 1, 32)) return bad("foundation", text);
  c.foundation = std::string(f[0]);

  const auto component = detail::parse_uint(f[1], 256, 3);
  if (!component || *component == 0) return bad("component id", text);
  c.component = static_cast<uint32_t>(*component);

  c.transport = detail::lower(f[2]);
  if (c.transport != "udp" && c.transport != "tcp") return bad("transport", text);

  const auto priority = detail::parse_uint(f[3], 0xFFFFFFFFu, 10);
  if (!priority) return bad("priority", text);
  c.priority = static_cast<uint32_t>(*priority);

  if (!detail::is_address(f[4])) return bad("address", text);
  c.address = std::string(f[4]);

  const auto port = detail::parse_port(f[5]);
  if (!port) return bad("port", text);
  c.port = *port;

  if (f[6] != "typ") return bad("expected 'typ'", text);
  c.type = detail::lower(f[7]);
  if (c.type != "host" && c.type != "srflx" && c.type != "prflx" && c.type != "relay") {
    return bad("candidate type", text);
  }

  // Everything after the type is `name value` pairs; raddr, rport and tcptype
  // are understood, the rest is kept verbatim and in order.
  if ((f.size() - 8) % 2 != 0) return bad("extension without a value", text);
  bool have_raddr = false;
  bool have_rport = false;
  for (std::size_t i = 8; i < f.size(); i += 2) {
    const std::string_view name = f[i];
    const std::string_view value = f[i + 1];
    if (name == "raddr") {
      if (have_raddr || !detail::is_address(value)) return bad("raddr", text);
      have_raddr = true;
      c.related_address = std::string(value);
    } else if (name == "rport") {
      const auto rport = detail::parse_port(value);
      if (have_rport || !rport) return bad("rport", text);
      have_rport = true;
      c.related_port = *rport;
    } else if (name == "tcptype") {
      if (!c.tcp_type.empty() || (value != "active" && value != "passive" && value != "so")) {
        return bad("tcptype", text);
      }
      c.tcp_type = std::string(value);
    } else {
      if (!detail::is_token(name) || !detail::is_vchar_string(value)) {
        return bad("extension", text);
      }
      if (c.extensions.size() == kMaxExtensions) return bad("too many extensions", text);
      c.extensions.emplace_back(std::string(name), std::string(value));
    }
  }
  // The grammar makes rel-addr and rel-port separately optional, but section 5.1
  // describes them as a pair and every stack sends both; requiring both keeps the
  // struct unambiguous (related_port 0 with an address is a real "rport 0").
  if (have_raddr != have_rport) return bad("raddr and rport must both be present", text);
  if (!c.tcp_type.empty() && c.transport != "tcp") return bad("tcptype on a udp candidate", text);
  return c;
}

std::string to_string(const Candidate& c) {
  std::string out = "candidate:";
  out += c.foundation;
  out += ' ';
  out += std::to_string(c.component);
  out += ' ';
  out += c.transport;
  out += ' ';
  out += std::to_string(c.priority);
  out += ' ';
  out += c.address;
  out += ' ';
  out += std::to_string(c.port);
  out += " typ ";
  out += c.type;
  if (!c.related_address.empty()) {
    out += " raddr ";
    out += c.related_address;
    out += " rport ";
    out += std::to_string(c.related_port);
  }
  if (!c.tcp_type.empty()) {
    out += " tcptype ";
    out += c.tcp_type;
  }
  for (const auto& [name, value] : c.extensions) {
    out += ' ';
    out += name;
    out += ' ';
    out += value;
  }
  return out;
}

}  // namespace rtcmesh::sdp
