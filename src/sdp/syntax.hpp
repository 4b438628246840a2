// Lexical helpers shared by the SDP and candidate parsers (internal to src/sdp).
//
// Header-only so the sdp layer keeps its two translation units. Everything here
// works on untrusted bytes: no allocation beyond the result, no exceptions, and
// every number is range-checked before it is stored.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtcmesh::sdp::detail {

inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
inline bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
inline char to_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

// RFC 8866 section 9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39
//                                  / %x41-5A / %x5E-7E
inline bool is_token_char(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2A || c == 0x2B || c == 0x2D ||
         c == 0x2E || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) ||
         (c >= 0x5E && c <= 0x7E);
}

inline bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_token_char(c)) return false;
  }
  return true;
}

// RFC 5234 VCHAR: visible ASCII, %x21-7E.
inline bool is_vchar_string(std::string_view s) {
  if (s.empty()) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

// RFC 8839 section 5.1: ice-char = ALPHA / DIGIT / "+" / "/"
inline bool is_ice_chars(std::string_view s, std::size_t min_len, std::size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return false;
  for (char c : s) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '/') return false;
  }
  return true;
}

// Strict unsigned decimal: 1..max_digits digits, no sign, no spaces, value <= max.
inline std::optional<uint64_t> parse_uint(std::string_view s, uint64_t max,
                                          std::size_t max_digits = 20) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const auto d = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    value = value * 10 + d;
  }
  if (value > max) return std::nullopt;
  return value;
}

inline std::optional<uint16_t> parse_port(std::string_view s) {
  auto v = parse_uint(s, 65535, 5);
  if (!v) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

// Splits on runs of SP (and HTAB); never yields empty pieces.
inline std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// Splits on runs of SP, HTAB and ','; never yields empty pieces. For attribute
// values that are a list in the RFC (SP-separated) but that some stacks write with
// commas (libdatachannel's a=ice-options:ice2,trickle).
inline std::vector<std::string_view> split_list(std::string_view s) {
  std::vector<std::string_view> out;
  auto is_sep = [](char c) { return c == ' ' || c == '\t' || c == ','; };
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_sep(s[i])) ++i;
    const std::size_t start = i;
    while (i < s.size() && !is_sep(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// Splits on single SP exactly; empty pieces (double spaces, leading/trailing SP)
// are kept so the caller can reject them.
inline std::vector<std::string_view> split_sp(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = s.find(' ', start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Dotted-quad IPv4 (RFC 3986 IPv4address: each octet 0..255, 1..3 digits).
inline bool is_ipv4(std::string_view s) {
  int parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == start || i - start > 3) return false;
    if (!parse_uint(s.substr(start, i - start), 255, 3)) return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

// RFC 4291 section 2.2 text forms: up to 8 groups of 1..4 hex digits, at most one
// "::", optionally ending in an embedded dotted-quad IPv4 address. No zone index.
inline bool is_ipv6(std::string_view s) {
  if (s.size() < 2 || s.size() > 45) return false;
  int groups = 0;
  bool compressed = false;
  std::size_t i = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == s.size()) return true;  // "::"
  } else if (s[0] == ':') {
    return false;
  }
  while (i < s.size()) {
    const std::size_t start = i;
    while (i < s.size() && is_hex(s[i])) ++i;
    const std::size_t len = i - start;
    if (i < s.size() && s[i] == '.') {
      // Embedded IPv4 tail: takes the place of two groups and must end the text.
      if (!is_ipv4(s.substr(start))) return false;
      groups += 2;
      i = s.size();
      break;
    }
    if (len == 0 || len > 4) return false;
    ++groups;
    if (i == s.size()) break;
    if (s[i] != ':') return false;
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (compressed) return false;
      compressed = true;
      ++i;
      if (i == s.size()) break;  // trailing "::"
    } else if (i == s.size()) {
      return false;  // trailing single ':'
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

// RFC 1123 host name (also covers mDNS "<uuid>.local" names): dot-separated labels
// of letters, digits, '-' and '_' (seen in the wild), 1..63 each, 253 total. A name
// made only of digits and dots is a malformed IPv4 address, not a host name.
inline bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  bool any_alpha = false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') return false;
    if (!is_digit(c)) any_alpha = true;
    if (++label > 63) return false;
  }
  return label > 0 && any_alpha;
}

inline bool is_address(std::string_view s) {
  if (s.find(':') != std::string_view::npos) return is_ipv6(s);
  return is_ipv4(s) || is_hostname(s);
}

// For error messages: at most `max` bytes of the offending text, quoted, with
// control and non-ASCII bytes escaped as \xNN so logs stay one readable line.
inline std::string quote(std::string_view s, std::size_t max = 160) {
  static constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  std::string out = "'";
  const std::size_t n = s.size() < max ? s.size() : max;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7F || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0x0F];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < s.size()) out += "...";
  out += "'";
  return out;
}

}  // namespace rtcmesh::sdp::detail
