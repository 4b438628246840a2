#include "sdp/session_description.hpp"

#include <string>
#include <utility>
#include <vector>

#include "sdp/syntax.hpp"

namespace rtcmesh::sdp {

std::string_view to_string(Type type) {
  switch (type) {
    case Type::Offer:
      return "offer";
    case Type::Answer:
      return "answer";
    case Type::Pranswer:
      return "pranswer";
    case Type::Rollback:
      return "rollback";
  }
  return "offer";
}

std::optional<Type> parse_type(std::string_view text) {
  if (text == "offer") return Type::Offer;
  if (text == "answer") return Type::Answer;
  if (text == "pranswer") return Type::Pranswer;
  if (text == "rollback") return Type::Rollback;
  return std::nullopt;
}

std::string_view to_string(Setup setup) {
  switch (setup) {
    case Setup::ActPass:
      return "actpass";
    case Setup::Active:
      return "active";
    case Setup::Passive:
      return "passive";
  }
  return "actpass";
}

namespace {

using detail::quote;

constexpr std::string_view kDataChannelFormat = "webrtc-datachannel";
constexpr std::size_t kMaxMidLength = 64;

// One SDP line (RFC 8866 section 5: <type>=<value>), without its line ending.
struct Line {
  std::size_t number = 0;  // 1-based
  std::string_view text;   // the whole line
  char type = 0;
  std::string_view value;  // after "<type>="
};

Error line_error(const Line& line, std::string_view what) {
  return make_error(ErrorCode::SyntaxError, "line " + std::to_string(line.number) + ": " +
                                                std::string(what) + ": " + quote(line.text));
}

// An a= line split at the first ':' (RFC 8866 section 5.13: a=<attribute>[:<value>]).
struct Attribute {
  std::string_view name;
  std::string_view value;
  bool has_value = false;
};

Attribute split_attribute(std::string_view value) {
  const std::size_t colon = value.find(':');
  if (colon == std::string_view::npos) return {value, {}, false};
  return {value.substr(0, colon), value.substr(colon + 1), true};
}

// ICE and DTLS attributes that may sit at session or media level (RFC 8839
// section 5, RFC 8122 section 5, RFC 4145 section 4). Media level wins.
struct TransportAttributes {
  std::optional<std::string> ufrag;
  std::optional<std::string> pwd;
  std::optional<bool> trickle;  // set when an a=ice-options line was seen
  bool lite = false;
  std::vector<Fingerprint> fingerprints;
  std::optional<Setup> setup;
};

// The data-channel section while it is being read.
struct ApplicationSection {
  const Line* m_line = nullptr;
  bool legacy = false;
  uint16_t port = 0;
  uint16_t legacy_sctp_port = 0;  // the <fmt> of a legacy m= line
  std::optional<std::string> mid;
  std::optional<uint16_t> sctp_port;
  bool have_sctpmap = false;
  std::optional<uint64_t> max_message_size;
  std::optional<std::string> connection_address;
  std::vector<Candidate> candidates;
  bool end_of_candidates = false;
  TransportAttributes transport;
};

// RFC 8122 section 5:
//   fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
//   hash-func   = "sha-1" / "sha-224" / "sha-256" / "sha-384" / "sha-512"
//                 / "md5" / "md2" / token
//   fingerprint = 2UHEX *(":" 2UHEX)
// Lower-case hex is accepted too (some stacks send it) and normalised to upper.
std::optional<Fingerprint> parse_fingerprint(std::string_view value) {
  const auto parts = detail::split_ws(value);
  if (parts.size() != 2 || !detail::is_token(parts[0])) return std::nullopt;
  Fingerprint fp;
  fp.algorithm = detail::lower(parts[0]);
  const std::string_view hex = parts[1];
  // "XX" then ":XX" repeated: the length must be 3n - 1.
  if (hex.size() < 2 || (hex.size() + 1) % 3 != 0) return std::nullopt;
  const std::size_t bytes = (hex.size() + 1) / 3;
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (i % 3 == 2) {
      if (hex[i] != ':') return std::nullopt;
    } else if (!detail::is_hex(hex[i])) {
      return std::nullopt;
    }
  }
  std::size_t expected = 0;
  if (fp.algorithm == "sha-1")
    expected = 20;
  else if (fp.algorithm == "sha-224")
    expected = 28;
  else if (fp.algorithm == "sha-256")
    expected = 32;
  else if (fp.algorithm == "sha-384")
    expected = 48;
  else if (fp.algorithm == "sha-512")
    expected = 64;
  else if (fp.algorithm == "md5" || fp.algorithm == "md2")
    expected = 16;
  if (expected != 0 ? bytes != expected : bytes > 64) return std::nullopt;
  fp.value.reserve(hex.size());
  for (char c : hex) fp.value += detail::to_upper(c);
  return fp;
}

std::optional<Setup> parse_setup(std::string_view value) {
  // RFC 4145 section 4 also defines "holdconn", which JSEP never uses (RFC 8842).
  if (detail::iequals(value, "actpass")) return Setup::ActPass;
  if (detail::iequals(value, "active")) return Setup::Active;
  if (detail::iequals(value, "passive")) return Setup::Passive;
  return std::nullopt;
}

// RFC 8866 section 5.7: c=<nettype> <addrtype> <connection-address>. Only unicast
// IN addresses make sense for ICE; the TTL/count suffixes of multicast are refused.
std::optional<std::string> parse_connection(std::string_view value) {
  const auto parts = detail::split_sp(value);
  if (parts.size() != 3 || parts[0] != "IN") return std::nullopt;
  if (parts[1] != "IP4" && parts[1] != "IP6") return std::nullopt;
  if (!detail::is_address(parts[2])) return std::nullopt;
  return std::string(parts[2]);
}

bool is_proto(std::string_view proto) {
  // RFC 8866 section 9: proto = token *("/" token)
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = proto.find('/', start);
    const std::string_view part = proto.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!detail::is_token(part)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool is_transport_attribute(std::string_view name) {
  return name == "ice-ufrag" || name == "ice-pwd" || name == "ice-options" || name == "ice-lite" ||
         name == "fingerprint" || name == "setup";
}

// Applies an ICE/DTLS attribute valid at both levels (is_transport_attribute()).
std::optional<Error> apply_transport_attribute(const Line& line, const Attribute& attr,
                                               TransportAttributes& t) {
  if (attr.name == "ice-ufrag") {
    // RFC 8839 section 5 (ice-ufrag): ice-ufrag-att = "ice-ufrag:" ufrag; ufrag = 4*256ice-char
    if (t.ufrag) return line_error(line, "duplicate a=ice-ufrag");
    if (!detail::is_ice_chars(attr.value, 4, 256)) return line_error(line, "bad a=ice-ufrag");
    t.ufrag = std::string(attr.value);
  } else if (attr.name == "ice-pwd") {
    // RFC 8839 section 5 (ice-pwd): ice-pwd-att = "ice-pwd:" password; password = 22*256ice-char
    if (t.pwd) return line_error(line, "duplicate a=ice-pwd");
    if (!detail::is_ice_chars(attr.value, 22, 256)) return line_error(line, "bad a=ice-pwd");
    t.pwd = std::string(attr.value);
  } else if (attr.name == "ice-options") {
    // RFC 8839 section 5 (ice-options):
    //   ice-options = "ice-options:" ice-option-tag *(SP ice-option-tag)
    //   ice-option-tag = 1*ice-char
    // Accepted more liberally, as real stacks write it: libdatachannel separates
    // the tags with commas ("ice2,trickle"), older Chromium sent "google-ice". Any
    // token is a tag; only "trickle" means something to us.
    if (t.trickle) return line_error(line, "duplicate a=ice-options");
    const auto tags = detail::split_list(attr.value);
    if (tags.empty()) return line_error(line, "bad a=ice-options");
    bool trickle = false;
    for (auto tag : tags) {
      if (!detail::is_token(tag) || tag.size() > 256) return line_error(line, "bad a=ice-options");
      if (tag == "trickle") trickle = true;
    }
    t.trickle = trickle;
  } else if (attr.name == "ice-lite") {
    // RFC 8839 section 5 (ice-lite): a session-level flag, tolerated at media level.
    t.lite = true;
  } else if (attr.name == "fingerprint") {
    auto fp = parse_fingerprint(attr.value);
    if (!fp) return line_error(line, "bad a=fingerprint");
    if (t.fingerprints.size() == kMaxFingerprints) {
      return line_error(line,
                        "too many a=fingerprint (max " + std::to_string(kMaxFingerprints) + ")");
    }
    t.fingerprints.push_back(std::move(*fp));
  } else if (attr.name == "setup") {
    // RFC 4145 section 4, as restricted for DTLS by RFC 8842.
    if (t.setup) return line_error(line, "duplicate a=setup");
    auto setup = parse_setup(attr.value);
    if (!setup) return line_error(line, "bad a=setup");
    t.setup = *setup;
  }
  return std::nullopt;
}

// Reads a=mid (RFC 5888 section 4: identification-tag = token).
std::optional<Error> read_mid(const Line& line, const Attribute& attr,
                              std::optional<std::string>& mid) {
  if (mid) return line_error(line, "duplicate a=mid");
  if (!detail::is_token(attr.value) || attr.value.size() > kMaxMidLength) {
    return line_error(line, "bad a=mid");
  }
  mid = std::string(attr.value);
  return std::nullopt;
}

std::optional<Error> apply_application_attribute(const Line& line, ApplicationSection& s) {
  const Attribute attr = split_attribute(line.value);
  if (is_transport_attribute(attr.name)) return apply_transport_attribute(line, attr, s.transport);

  if (attr.name == "mid") return read_mid(line, attr, s.mid);
  if (attr.name == "candidate") {
    // RFC 8839 section 5.1 (media level only).
    if (s.candidates.size() == kMaxCandidates) {
      return line_error(line, "too many candidates (max " + std::to_string(kMaxCandidates) + ")");
    }
    auto candidate = parse_candidate(line.text);
    if (!candidate) {
      return make_error(ErrorCode::SyntaxError,
                        "line " + std::to_string(line.number) + ": " + candidate.error().message);
    }
    s.candidates.push_back(std::move(candidate.value()));
    return std::nullopt;
  }
  if (attr.name == "end-of-candidates") {
    // RFC 8840 (Trickle ICE): a=end-of-candidates, a flag.
    s.end_of_candidates = true;
    return std::nullopt;
  }
  if (attr.name == "max-message-size") {
    // RFC 8841 (max-message-size): max-message-size = "max-message-size" ":" 1*DIGIT
    if (s.max_message_size) return line_error(line, "duplicate a=max-message-size");
    auto size = detail::parse_uint(attr.value, UINT64_MAX);
    if (!size) return line_error(line, "bad a=max-message-size");
    s.max_message_size = *size;
    return std::nullopt;
  }
  if (s.legacy) {
    if (attr.name == "sctpmap") {
      // draft-ietf-mmusic-sctp-sdp-05 section 6:
      //   a=sctpmap:<sctpmap-number> <app> [<max-message-size / streams>]
      const auto parts = detail::split_ws(attr.value);
      if (s.have_sctpmap) return line_error(line, "duplicate a=sctpmap");
      if (parts.size() < 2 || parts.size() > 3) return line_error(line, "bad a=sctpmap");
      const auto number = detail::parse_port(parts[0]);
      if (!number || *number != s.legacy_sctp_port) {
        return line_error(line, "bad a=sctpmap: port does not match the m= line");
      }
      if (parts[1] != kDataChannelFormat) return line_error(line, "bad a=sctpmap: protocol");
      if (parts.size() == 3 && !detail::parse_uint(parts[2], UINT32_MAX, 10)) {
        return line_error(line, "bad a=sctpmap: streams");
      }
      s.have_sctpmap = true;
    }
    // a=sctp-port belongs to the modern form; the legacy form carries the port
    // on the m= line, so it is ignored here like any other unknown attribute.
    return std::nullopt;
  }
  if (attr.name == "sctp-port") {
    // RFC 8841 (sctp-port): sctp-port-attr = "a=sctp-port:" portnumber
    if (s.sctp_port) return line_error(line, "duplicate a=sctp-port");
    auto port = detail::parse_port(attr.value);
    if (!port || *port == 0) return line_error(line, "bad a=sctp-port");
    s.sctp_port = *port;
    return std::nullopt;
  }
  return std::nullopt;  // unknown attribute: ignored
}

// RFC 8866 section 5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
struct MediaLine {
  std::string media;
  uint16_t port = 0;
  std::string proto;
  std::vector<std::string_view> formats;
};

Result<MediaLine> parse_media_line(const Line& line) {
  const auto parts = detail::split_sp(line.value);
  if (parts.size() < 4) return line_error(line, "bad m= line");
  for (auto part : parts) {
    if (part.empty()) return line_error(line, "bad m= line");
  }
  MediaLine m;
  if (!detail::is_token(parts[0])) return line_error(line, "bad m= line: media");
  m.media = std::string(parts[0]);
  std::string_view port = parts[1];
  if (const std::size_t slash = port.find('/'); slash != std::string_view::npos) {
    auto count = detail::parse_uint(port.substr(slash + 1), 65535, 5);
    if (!count || *count == 0) return line_error(line, "bad m= line: port count");
    port = port.substr(0, slash);
  }
  auto port_number = detail::parse_port(port);
  if (!port_number) return line_error(line, "bad m= line: port");
  m.port = *port_number;
  if (!is_proto(parts[2])) return line_error(line, "bad m= line: proto");
  m.proto = std::string(parts[2]);
  for (std::size_t i = 3; i < parts.size(); ++i) {
    if (!detail::is_token(parts[i])) return line_error(line, "bad m= line: format");
    m.formats.push_back(parts[i]);
  }
  return m;
}

// Splits `text` into lines (LF or CRLF) and checks each is "<letter>=<value>"
// without control characters (RFC 8866 section 5).
Result<std::vector<Line>> split_lines(std::string_view text) {
  std::vector<Line> lines;
  std::size_t pos = 0;
  std::size_t number = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    Line line;
    line.number = ++number;
    line.text = text.substr(pos, end - pos);
    if (!line.text.empty() && line.text.back() == '\r') line.text.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  // Blank lines are tolerated at the very end only.
  while (!lines.empty() && lines.back().text.empty()) lines.pop_back();
  for (Line& line : lines) {
    if (line.text.size() > kMaxLineLength) {
      return make_error(ErrorCode::SyntaxError,
                        "line " + std::to_string(line.number) + ": line too long (" +
                            std::to_string(line.text.size()) + " bytes, max " +
                            std::to_string(kMaxLineLength) + "): " + quote(line.text, 40));
    }
    if (line.text.empty()) return line_error(line, "empty line");
    for (char ch : line.text) {
      const auto c = static_cast<unsigned char>(ch);
      if ((c < 0x20 && c != '\t') || c == 0x7F) return line_error(line, "control character");
    }
    if (line.text.size() < 2 || line.text[1] != '=' || line.text[0] < 'a' || line.text[0] > 'z') {
      return line_error(line, "expected <type>=<value>");
    }
    line.type = line.text[0];
    line.value = line.text.substr(2);
  }
  return lines;
}

// RFC 8866 section 5.2: o=<username> <sess-id> <sess-version> <nettype> <addrtype>
// <unicast-address>
std::optional<Error> parse_origin(const Line& line, SessionDescription& d) {
  const auto parts = detail::split_sp(line.value);
  if (parts.size() != 6) return line_error(line, "bad o= line: expected 6 fields");
  if (!detail::is_token(parts[0])) return line_error(line, "bad o= line: username");
  auto id = detail::parse_uint(parts[1], UINT64_MAX);
  if (!id) return line_error(line, "bad o= line: session id");
  auto version = detail::parse_uint(parts[2], UINT64_MAX);
  if (!version) return line_error(line, "bad o= line: session version");
  // unicast-address = IP4-address / IP6-address / FQDN / extn-addr: any visible
  // characters (we never use it; the serialiser writes 127.0.0.1 like Chromium).
  if (!detail::is_token(parts[3]) || !detail::is_token(parts[4]) ||
      !detail::is_vchar_string(parts[5])) {
    return line_error(line, "bad o= line: address");
  }
  d.origin_username = std::string(parts[0]);
  d.session_id = *id;
  d.session_version = *version;
  return std::nullopt;
}

// RFC 8866 section 5.9: t=<start-time> <stop-time>
bool is_timing(std::string_view value) {
  const auto parts = detail::split_sp(value);
  return parts.size() == 2 && detail::parse_uint(parts[0], UINT64_MAX) &&
         detail::parse_uint(parts[1], UINT64_MAX);
}

bool is_data_channel_proto(std::string_view proto, bool& legacy) {
  // RFC 8841: UDP/DTLS/SCTP and TCP/DTLS/SCTP; the pre-standard
  // draft used plain DTLS/SCTP with the SCTP port as the format.
  if (detail::iequals(proto, "UDP/DTLS/SCTP") || detail::iequals(proto, "TCP/DTLS/SCTP")) {
    legacy = false;
    return true;
  }
  if (detail::iequals(proto, "DTLS/SCTP")) {
    legacy = true;
    return true;
  }
  return false;
}

}  // namespace

Result<SessionDescription> parse(std::string_view text) {
  if (text.size() > kMaxSdpSize) {
    return make_error(ErrorCode::SyntaxError, "SDP too large: " + std::to_string(text.size()) +
                                                  " bytes (max " + std::to_string(kMaxSdpSize) +
                                                  ")");
  }
  auto split = split_lines(text);
  if (!split) return split.error();
  const std::vector<Line>& lines = split.value();
  if (lines.empty()) return make_error(ErrorCode::SyntaxError, "line 1: empty SDP");

  SessionDescription d;

  // RFC 8866 section 5: v=, o=, s= come first, in this order.
  if (lines[0].type != 'v' || lines[0].value != "0") return line_error(lines[0], "expected v=0");
  if (lines.size() < 2 || lines[1].type != 'o') {
    return lines.size() < 2 ? make_error(ErrorCode::SyntaxError, "line 2: missing o= line")
                            : line_error(lines[1], "expected o= line");
  }
  if (auto error = parse_origin(lines[1], d)) return *error;
  if (lines.size() < 3 || lines[2].type != 's') {
    return lines.size() < 3 ? make_error(ErrorCode::SyntaxError, "line 3: missing s= line")
                            : line_error(lines[2], "expected s= line");
  }

  // Session level: up to the first m= line.
  TransportAttributes session;
  std::optional<std::string> session_connection;
  std::vector<std::vector<std::string_view>> bundle_groups;
  bool have_timing = false;
  std::size_t i = 3;
  for (; i < lines.size() && lines[i].type != 'm'; ++i) {
    const Line& line = lines[i];
    switch (line.type) {
      case 't':
        if (!is_timing(line.value)) return line_error(line, "bad t= line");
        have_timing = true;
        break;
      case 'c': {
        auto address = parse_connection(line.value);
        if (!address) return line_error(line, "bad c= line");
        if (session_connection) return line_error(line, "duplicate c= line");
        session_connection = std::move(*address);
        break;
      }
      case 'a': {
        const Attribute attr = split_attribute(line.value);
        if (is_transport_attribute(attr.name)) {
          if (auto error = apply_transport_attribute(line, attr, session)) return *error;
        } else if (attr.name == "group") {
          // RFC 5888 section 5: a=group:<semantics> *(SP identification-tag)
          auto tags = detail::split_ws(attr.value);
          if (tags.empty()) return line_error(line, "bad a=group");
          if (detail::iequals(tags[0], "BUNDLE")) {
            tags.erase(tags.begin());
            bundle_groups.push_back(std::move(tags));
          }
        }
        break;  // other session attributes (msid-semantic, extmap-allow-mixed...) ignored
      }
      case 'i':
      case 'u':
      case 'e':
      case 'p':
      case 'b':
      case 'r':
      case 'z':
      case 'k':
        break;
      case 'v':
      case 'o':
      case 's':
        return line_error(line, std::string("duplicate ") + line.type + "= line");
      default:
        return line_error(line, std::string("unknown line type '") + line.type + "'");
    }
  }
  if (!have_timing) {
    if (i < lines.size()) return line_error(lines[i], "missing t= line before the first m=");
    return line_error(lines.back(), "missing t= line");
  }

  // Media sections.
  std::optional<ApplicationSection> ours;
  std::vector<std::string> mids;
  std::size_t media_count = 0;
  while (i < lines.size()) {
    const Line& m_line = lines[i++];
    if (++media_count > kMaxMediaSections) {
      return line_error(m_line,
                        "too many m= sections (max " + std::to_string(kMaxMediaSections) + ")");
    }
    auto media = parse_media_line(m_line);
    if (!media) return media.error();

    bool legacy = false;
    const bool data_channel =
        media->media == "application" && is_data_channel_proto(media->proto, legacy);
    ApplicationSection section;
    if (data_channel) {
      // RFC 8841: the format is "webrtc-datachannel"; legacy: the SCTP port.
      if (legacy) {
        auto sctp =
            media->formats.size() == 1 ? detail::parse_port(media->formats[0]) : std::nullopt;
        if (!sctp || *sctp == 0) return line_error(m_line, "bad m=application line: SCTP port");
        section.legacy_sctp_port = *sctp;
      } else if (media->formats.size() != 1 || media->formats[0] != kDataChannelFormat) {
        return line_error(m_line, "bad m=application line: expected webrtc-datachannel");
      }
    }
    // Port 0 marks a rejected section (RFC 8866 section 5.14, RFC 8829 section 5.3.1).
    const bool is_ours = data_channel && media->port != 0 && !ours;

    section.m_line = &m_line;
    section.legacy = legacy;
    section.port = media->port;
    std::optional<std::string> other_mid;
    for (; i < lines.size() && lines[i].type != 'm'; ++i) {
      const Line& line = lines[i];
      switch (line.type) {
        case 'c': {
          auto address = parse_connection(line.value);
          if (!address) return line_error(line, "bad c= line");
          if (is_ours) {
            if (section.connection_address) return line_error(line, "duplicate c= line");
            section.connection_address = std::move(*address);
          }
          break;
        }
        case 'a':
          if (is_ours) {
            if (auto error = apply_application_attribute(line, section)) return *error;
          } else if (const Attribute attr = split_attribute(line.value); attr.name == "mid") {
            if (auto error = read_mid(line, attr, other_mid)) return *error;
          }
          break;
        case 'i':
        case 'b':
        case 'k':
          break;
        default:
          return line_error(line,
                            std::string("unexpected ") + line.type + "= line in a media section");
      }
    }

    const std::optional<std::string>& mid = is_ours ? section.mid : other_mid;
    if (mid) {
      for (const auto& seen : mids) {
        if (seen == *mid) return line_error(m_line, "duplicate mid '" + *mid + "'");
      }
      mids.push_back(*mid);
    }
    if (is_ours) {
      d.application_index = d.other_media.size();
      ours = std::move(section);
    } else {
      OtherMedia other;
      other.media = media->media;
      other.proto = media->proto;
      for (std::size_t f = 0; f < media->formats.size(); ++f) {
        if (f != 0) other.formats += ' ';
        other.formats += media->formats[f];
      }
      other.mid = other_mid.value_or("");
      d.other_media.push_back(std::move(other));
    }
  }

  if (!ours) {
    return line_error(lines.back(),
                      "end of SDP without a usable m=application data channel section");
  }
  ApplicationSection& s = *ours;
  TransportAttributes& media_level = s.transport;

  // RFC 8839 section 5 and RFC 8122 section 5: media level overrides session level.
  if (media_level.ufrag)
    d.ice_ufrag = *media_level.ufrag;
  else if (session.ufrag)
    d.ice_ufrag = *session.ufrag;
  else
    return line_error(*s.m_line, "m=application section has no a=ice-ufrag");
  if (media_level.pwd)
    d.ice_pwd = *media_level.pwd;
  else if (session.pwd)
    d.ice_pwd = *session.pwd;
  else
    return line_error(*s.m_line, "m=application section has no a=ice-pwd");
  d.fingerprints = !media_level.fingerprints.empty() ? std::move(media_level.fingerprints)
                                                     : std::move(session.fingerprints);
  if (d.fingerprints.empty()) {
    return line_error(*s.m_line, "m=application section has no a=fingerprint");
  }
  d.ice_trickle = media_level.trickle ? *media_level.trickle : session.trickle.value_or(false);
  d.ice_lite = media_level.lite || session.lite;
  d.setup = media_level.setup ? media_level.setup : session.setup;

  d.mid = s.mid.value_or("");
  d.legacy_sctpmap = s.legacy;
  d.sctp_port = s.legacy ? s.legacy_sctp_port : s.sctp_port.value_or(5000);
  d.max_message_size = s.max_message_size;
  d.candidates = std::move(s.candidates);
  d.end_of_candidates = s.end_of_candidates;
  d.connection_address =
      s.connection_address ? *s.connection_address : session_connection.value_or("0.0.0.0");
  d.media_port = s.port;
  d.bundle = false;
  if (!d.mid.empty()) {
    for (const auto& group : bundle_groups) {
      for (auto tag : group) {
        if (tag == d.mid) d.bundle = true;
      }
    }
  }
  return d;
}

std::string serialize(const SessionDescription& d) {
  std::string out;
  out.reserve(512 + 128 * d.candidates.size() + 64 * d.other_media.size());
  auto line = [&out](std::string_view a, std::string_view b = {}, std::string_view c = {}) {
    out += a;
    out += b;
    out += c;
    out += "\r\n";
  };
  auto address_type = [](const std::string& address) {
    return address.find(':') != std::string::npos ? "IN IP6 " : "IN IP4 ";
  };

  // RFC 8866 section 5 session part, in the shape Chromium emits (RFC 8829 section 5.2.1).
  line("v=0");
  line("o=", d.origin_username.empty() ? "-" : d.origin_username,
       " " + std::to_string(d.session_id) + " " + std::to_string(d.session_version) +
           " IN IP4 127.0.0.1");
  line("s=-");
  line("t=0 0");
  if (d.ice_lite) line("a=ice-lite");
  if (d.bundle && !d.mid.empty()) line("a=group:BUNDLE ", d.mid);
  line("a=msid-semantic: WMS");

  auto write_other = [&](const OtherMedia& m) {
    // Rejected section (port 0), RFC 8829 section 5.3.1.
    line("m=", m.media, " 0 " + m.proto + " " + m.formats);
    line("c=IN IP4 0.0.0.0");
    if (!m.mid.empty()) line("a=mid:", m.mid);
  };
  const std::size_t before =
      d.application_index < d.other_media.size() ? d.application_index : d.other_media.size();
  for (std::size_t k = 0; k < before; ++k) write_other(d.other_media[k]);

  // RFC 8841: m=application <port> UDP/DTLS/SCTP webrtc-datachannel
  line("m=application ", std::to_string(d.media_port), " UDP/DTLS/SCTP webrtc-datachannel");
  line("c=", address_type(d.connection_address), d.connection_address);
  for (const auto& candidate : d.candidates) line("a=", to_string(candidate));
  if (d.end_of_candidates) line("a=end-of-candidates");
  line("a=ice-ufrag:", d.ice_ufrag);
  line("a=ice-pwd:", d.ice_pwd);
  if (d.ice_trickle) line("a=ice-options:trickle");
  for (const auto& fp : d.fingerprints) line("a=fingerprint:", fp.algorithm, " " + fp.value);
  if (d.setup) line("a=setup:", to_string(*d.setup));
  if (!d.mid.empty()) line("a=mid:", d.mid);
  line("a=sctp-port:", std::to_string(d.sctp_port));
  if (d.max_message_size) line("a=max-message-size:", std::to_string(*d.max_message_size));

  for (std::size_t k = before; k < d.other_media.size(); ++k) write_other(d.other_media[k]);
  return out;
}

}  // namespace rtcmesh::sdp
