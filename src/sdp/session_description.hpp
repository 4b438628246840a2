// The JSEP data-channel subset of SDP (RFC 8866, RFC 8829, RFC 8841, RFC 8839).
//
// We parse what browsers and aiortc send for a data-channel-only session and
// produce the same. Both `\r\n` and `\n` line endings are accepted, and the legacy
// `m=application <port> DTLS/SCTP 5000` + `a=sctpmap:5000 webrtc-datachannel N`
// form is understood. Anything malformed is rejected with an Error whose message
// names the line number and the line (e.g. "line 7: bad a=fingerprint: 'a=fingerprint:sha-256'").
//
// Untrusted input: parse() never throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "sdp/candidate.hpp"

namespace rtcmesh::sdp {

enum class Type { Offer, Answer, Pranswer, Rollback };
std::string_view to_string(Type type);                  // "offer", "answer", "pranswer", "rollback"
std::optional<Type> parse_type(std::string_view text);  // inverse of to_string

// a=setup (RFC 4145 / RFC 8842).
enum class Setup { ActPass, Active, Passive };
std::string_view to_string(Setup setup);  // "actpass", "active", "passive"

struct Fingerprint {
  std::string algorithm;  // lower-cased hash name, e.g. "sha-256"
  std::string value;      // upper-case hex bytes separated by ':', e.g. "AB:01:..."
  bool operator==(const Fingerprint&) const = default;
};

// An m= section that is not our data channel (audio, video, a second application
// section...). We keep enough to reject it in an answer (port 0) with the same mid.
struct OtherMedia {
  std::string media;    // "audio", "video", ...
  std::string proto;    // e.g. "UDP/TLS/RTP/SAVPF"
  std::string formats;  // rest of the m= line after proto
  std::string mid;
  bool operator==(const OtherMedia&) const = default;
};

struct SessionDescription {
  // o= line
  std::string origin_username = "-";
  uint64_t session_id = 0;
  uint64_t session_version = 0;

  // The data-channel (m=application) section. ICE/DTLS attributes may appear at
  // session level or media level in the input; media level wins. The parser
  // fills these from whichever is present.
  std::string mid = "0";                  // a=mid; parse() leaves it empty when absent
  bool legacy_sctpmap = false;            // input used `DTLS/SCTP` + `a=sctpmap`
  std::string ice_ufrag;                  // required
  std::string ice_pwd;                    // required
  bool ice_trickle = false;               // a=ice-options has the tag "trickle" (SP or "," lists)
  bool ice_lite = false;                  // a=ice-lite
  std::vector<Fingerprint> fingerprints;  // at least one required
  std::optional<Setup> setup;             // absent is allowed (treated as actpass in offers)
  uint16_t sctp_port = 5000;              // a=sctp-port (or the sctpmap number)
  // a=max-message-size. Absent means 65536 (RFC 8841 section 6.1); 0 means unlimited.
  std::optional<uint64_t> max_message_size;
  std::vector<Candidate> candidates;
  bool end_of_candidates = false;
  std::string connection_address = "0.0.0.0";  // c= of the section, else session c=
  uint16_t media_port = 9;                     // port on the m= line
  bool bundle = true;                          // a=group:BUNDLE present with our mid
  std::vector<OtherMedia> other_media;         // sections we do not handle, in order
  // Position of the data-channel section among all m= sections: other_media[0,
  // application_index) come before it, the rest after. An answer must keep the
  // offer's m= order (RFC 8829 section 5.3.1), so parse() records it and
  // serialize() honours it (values past other_media.size() mean "last").
  std::size_t application_index = 0;

  bool operator==(const SessionDescription&) const = default;
};

// Limits on untrusted input; anything larger is rejected with an Error.
inline constexpr std::size_t kMaxSdpSize = 64 * 1024;  // bytes
inline constexpr std::size_t kMaxLineLength = 4096;    // bytes per line
inline constexpr std::size_t kMaxCandidates = 1024;    // in our section
inline constexpr std::size_t kMaxFingerprints = 16;    // per level
inline constexpr std::size_t kMaxMediaSections = 256;  // m= lines

// Requires: v=0, o=, s= as the first three lines, t= before the first m=, and a
// usable data-channel section: m=application with UDP/DTLS/SCTP (or TCP/DTLS/SCTP)
// webrtc-datachannel, or legacy DTLS/SCTP <port>, and a non-zero port. The first
// such section is ours; every other m= section (audio, video, a port-0 or second
// application section) goes to other_media. ice-ufrag, ice-pwd and at least one
// fingerprint are required at media or session level. Attributes of other_media
// sections are not interpreted (only a=mid is kept); unknown attributes are ignored;
// unknown line types are rejected (RFC 8866 section 5 allows either).
Result<SessionDescription> parse(std::string_view text);

// Produces `\r\n`-terminated SDP in the modern form (UDP/DTLS/SCTP webrtc-datachannel,
// a=sctp-port, a=max-message-size when set, a=group:BUNDLE, a=msid-semantic: WMS,
// ICE and DTLS attributes at media level, candidates, end-of-candidates when set).
// Sections in other_media are written rejected (port 0) at their position (see
// application_index), keeping their mids, and are left out of the BUNDLE group.
// For any value parse() returned, parse(serialize(d)) succeeds and equals d except
// that legacy_sctpmap becomes false (checked by fuzz/sdp_fuzzer.cpp; the only
// exception is output grown past kMaxSdpSize, e.g. a ~64 KiB LF-only input). Hand-built
// descriptions must hold valid tokens (non-empty ufrag/pwd, no spaces or line breaks in strings).
std::string serialize(const SessionDescription& description);

}  // namespace rtcmesh::sdp
