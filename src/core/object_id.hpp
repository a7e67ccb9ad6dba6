#pragma once
// 24-hex ObjectId-style identifiers: 4-byte big-endian seconds, 5 random bytes per process,
// 3-byte counter. Ids made by one process are strictly increasing, so they sort by creation time
// and the same ids are valid MongoDB ObjectIds.
#include <cstdint>
#include <string>
#include <string_view>

namespace chat {

/// Thread-safe. Never blocks.
std::string new_object_id();
/// An id with its creation time in ms, made in one step: across threads, ids in increasing
/// order have non-decreasing times (so sorting by id also sorts by createdAt). Thread-safe.
struct StampedId {
  std::string id;
  std::int64_t ms = 0;
};
StampedId new_stamped_id();
/// Same layout with an explicit time and counter (tests, and ids for a given instant).
std::string make_object_id(std::uint32_t seconds, std::uint32_t counter);
/// True for exactly 24 lowercase or uppercase hex digits.
bool is_object_id(std::string_view s) noexcept;
/// Seconds since the epoch encoded in the id (caller checks is_object_id first).
std::uint32_t object_id_seconds(std::string_view id) noexcept;

}  // namespace chat
