// ICE candidate attribute (RFC 8839 section 5.1), as carried in SDP
// (`a=candidate:...`) and in trickled candidate strings (`candidate:...`).
//
// Untrusted input: parse_candidate never throws and rejects anything malformed
// with an Error whose message says what was wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"

namespace rtcmesh::sdp {

struct Candidate {
  std::string foundation;  // 1*32 ice-char
  uint32_t component = 1;  // 1..256
  std::string transport;   // lower-cased: "udp" or "tcp" (others rejected)
  uint32_t priority = 0;
  std::string address;  // IPv4, IPv6 or an mDNS/host name (kept as given)
  uint16_t port = 0;
  std::string type;             // "host", "srflx", "prflx" or "relay"
  std::string related_address;  // raddr, empty when absent
  uint16_t related_port = 0;    // rport, 0 when absent
  std::string tcp_type;         // "active" | "passive" | "so"; empty when absent
  // Any further `name value` pairs (generation, ufrag, network-id, network-cost...),
  // preserved in order so serialisation round-trips.
  std::vector<std::pair<std::string, std::string>> extensions;

  bool operator==(const Candidate&) const = default;
};

// Accepts "candidate:...", "a=candidate:..." and surrounding whitespace/CRLF.
Result<Candidate> parse_candidate(std::string_view text);

// "candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
// [raddr <a> rport <p>] [tcptype <t>] [<ext> <value>]*" (no "a=" prefix, no line ending).
std::string to_string(const Candidate& candidate);

}  // namespace rtcmesh::sdp
