#include "cluster/cluster_store.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <set>

#include "core/log.hpp"
#include "core/time.hpp"

namespace chat::cluster {
namespace {

std::string client_key(const store::Message& m) { return m.sender_id + "|" + m.client_msg_id; }

}  // namespace

ClusterStore::ClusterStore(store::Store& base, stream::MessageLog& log, bus::Bus* bus,
                           ClusterStoreOptions options)
    : base_(base), log_(log), bus_(bus), opts_(std::move(options)) {}

void ClusterStore::append_message(store::Message m, AppendCallback done) {
  if (m.client_msg_id.empty()) return produce(std::move(m), std::move(done));
  const std::string key = client_key(m);
  // Decided under the lock, acted on outside it: `done` and the log are never called holding it.
  std::optional<Claimed> earlier;
  {
    // Claimed here before the broker answers, so that quick retries on this instance reuse the
    // first id even without Redis.
    std::lock_guard lock(mu_);
    if (auto it = by_client_id_.find(key); it != by_client_id_.end()) {
      earlier = it->second;
    } else {
      // Failed attempts are not in the window that prunes the map: bound them here.
      if (by_client_id_.size() >= 2 * opts_.max_recent)
        std::erase_if(by_client_id_, [](const auto& kv) { return !kv.second.acked; });
      by_client_id_.emplace(key, Claimed{std::make_shared<const store::Message>(m), false});
    }
  }
  if (earlier) {
    if (earlier->acked) return done(store::Appended{*earlier->message, true});
    return produce(*earlier->message, std::move(done));
  }
  if (!bus_ || !bus_->ready()) return produce(std::move(m), std::move(done));
  // Across instances (a client retrying through another one after a failover) the key is
  // claimed in Redis, holding the whole record so that a retry can re-produce the original.
  std::string redis_key = "chat:cmid:{" + m.sender_id + "}:" + m.client_msg_id;
  std::string record = stream::encode_record(m);
  bus_->claim(std::move(redis_key), std::move(record), opts_.idempotency_ttl,
              [this, m = std::move(m), done = std::move(done)](
                  result<std::optional<std::string>> claimed) mutable {
                if (claimed && claimed.value()) {
                  if (auto first = stream::decode_record(**claimed)) {
                    {
                      std::lock_guard lock(mu_);
                      by_client_id_[client_key(m)] =
                          Claimed{std::make_shared<const store::Message>(first.value()), false};
                    }
                    return produce(std::move(first.value()), std::move(done));
                  }
                  spdlog::warn("idempotency key of {} holds an unreadable record: sending anew", m.id);
                }
                // Stored by this call, or Redis could not answer: per-instance idempotency only.
                produce(std::move(m), std::move(done));
              });
}

void ClusterStore::produce(store::Message m, AppendCallback done) {
  log_.append(m, [this, m, done = std::move(done)](result<void> r) mutable {
    if (!r) return done(r.err());  // the claim stays: a retry re-produces the same id
    remember(m);
    done(store::Appended{std::move(m), false});
  });
}

void ClusterStore::remember(const store::Message& m) {
  std::int64_t now = now_ms();
  std::lock_guard lock(mu_);
  MessagePtr p;
  if (!m.client_msg_id.empty()) {
    // The claim's copy is this message (produce() sends the claimed first attempt): share it.
    Claimed& c = by_client_id_[client_key(m)];
    if (!c.message || c.message->id != m.id) c.message = std::make_shared<const store::Message>(m);
    c.acked = true;
    p = c.message;
  } else {
    p = std::make_shared<const store::Message>(m);
  }
  auto& conv = by_conversation_[m.conversation_id];
  if (!conv.emplace(p->id, p).second) return;  // produced again: already in the window
  recent_.push_back(Recent{std::move(p), now});
  prune_locked(now);
}

void ClusterStore::prune_locked(std::int64_t now) {
  const std::int64_t oldest = now - opts_.recent_window.count();
  while (!recent_.empty() && (recent_.size() > opts_.max_recent || recent_.front().added_ms < oldest)) {
    const store::Message& m = *recent_.front().message;  // alive until the pop_front below
    if (auto c = by_conversation_.find(m.conversation_id); c != by_conversation_.end()) {
      c->second.erase(m.id);
      if (c->second.empty()) by_conversation_.erase(c);
    }
    if (!m.client_msg_id.empty())
      if (auto it = by_client_id_.find(client_key(m)); it != by_client_id_.end() && it->second.message->id == m.id)
        by_client_id_.erase(it);
    recent_.pop_front();
  }
}

result<store::MessagePage> ClusterStore::conversation_page(std::string_view conversation_id,
                                                           std::string_view before_id,
                                                           std::size_t limit) {
  auto page = base_.conversation_page(conversation_id, before_id, limit);
  if (!page) return page;
  std::vector<store::Message> extra;
  bool older_in_window = false;  // unstored messages older than the ones taken exist
  {
    std::lock_guard lock(mu_);
    auto c = by_conversation_.find(std::string(conversation_id));
    if (c == by_conversation_.end()) return page;
    auto end = before_id.empty() ? c->second.end() : c->second.lower_bound(before_id);
    // Only the newest `limit` of them can make it into the page.
    auto begin = end;
    for (std::size_t n = 0; n < limit && begin != c->second.begin(); ++n) --begin;
    older_in_window = begin != c->second.begin();
    for (auto it = begin; it != end; ++it) extra.push_back(*it->second);
  }
  if (extra.empty()) return page;
  std::set<std::string> have;
  for (const auto& m : page->messages) have.insert(m.id);
  std::vector<store::Message> merged = std::move(page->messages);
  for (auto& m : extra)
    if (!have.contains(m.id)) merged.push_back(std::move(m));
  std::sort(merged.begin(), merged.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  store::MessagePage out;
  // The database may not have the older window messages yet: they still make a next page.
  out.has_more = page->has_more || older_in_window;
  if (merged.size() > limit) {
    out.has_more = true;
    merged.erase(merged.begin(), merged.end() - static_cast<std::ptrdiff_t>(limit));
  }
  out.messages = std::move(merged);
  return out;
}

std::string ClusterStore::newest_recent(std::string_view conversation_id) const {
  std::lock_guard lock(mu_);
  auto c = by_conversation_.find(std::string(conversation_id));
  if (c == by_conversation_.end() || c->second.empty()) return {};
  return std::string(c->second.rbegin()->first);
}

result<std::string> ClusterStore::mark_read(std::string_view conversation_id, std::string_view user_id,
                                            std::string_view up_to_id) {
  return mark_read_as_many(conversation_id, user_id, up_to_id);
}

std::vector<result<std::string>> ClusterStore::mark_read_many(const std::vector<store::ReadMark>& marks) {
  if (!opts_.mark_read_known) return base_.mark_read_many(marks);
  std::vector<std::string> newest_known;
  newest_known.reserve(marks.size());
  const std::int64_t now_s = now_ms() / 1000;
  for (const store::ReadMark& m : marks) {
    std::string newest = newest_recent(m.conversation_id);
    // A receiver marks read what it got in real time, possibly sent through another instance
    // and not stored yet: an id from within the unstored window (and not from the future) may
    // be the newest message. Older ids must be stored, and the database's clamp applies to them.
    const std::string_view up_to = m.up_to_id;
    if (up_to.size() == 24 && up_to > newest) {
      std::int64_t secs = 0;
      auto [p, ec] = std::from_chars(up_to.data(), up_to.data() + 8, secs, 16);
      if (ec == std::errc{} && p == up_to.data() + 8 && secs <= now_s + 1 &&
          secs >= now_s - opts_.recent_window.count() / 1000)
        newest = std::string(up_to);
    }
    newest_known.push_back(std::move(newest));
  }
  auto out = opts_.mark_read_known(marks, newest_known);
  if (out.size() != marks.size())  // one result per mark, whatever the function returned
    out.resize(marks.size(), error{errc::internal, "mark read: no result"});
  return out;
}

void ClusterStore::flush() {
  log_.flush(std::chrono::seconds(10));
  base_.flush();
}

std::size_t ClusterStore::recent_size() const {
  std::lock_guard lock(mu_);
  return recent_.size();
}

}  // namespace chat::cluster
