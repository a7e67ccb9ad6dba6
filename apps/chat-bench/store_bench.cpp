// chat-store-bench: the embedded store's durable write rate, without the network. Producers
// append messages to SqliteStore (synchronous=FULL, group commit) with a bounded number in
// flight each, as the send path does, and the run reports acknowledged appends per second,
// transactions (group commits) per second and the append → durable latency. An append is
// acknowledged once durable in the store's message journal; the run then waits until every
// message is in the main database too (flush), and reports that rate as well: over a long run
// (--messages well above the store's 131,072 unindexed messages) the two converge. Issue 6's
// target: "the durable store sustains ≥ 100,000 messages/s with group commits".
//
//   chat-store-bench [--messages 1000000] [--producers 4] [--inflight 2048] [--conversations 1000]
//                    [--text-bytes 64] [--max-batch 4096] [--summaries-every MS] [--read-positions N]
//                    [--dir DIR (default: a temp dir)]
//
// --read-positions N: N threads also move a read position each, one after the other (as a chat
// client marks what it has seen read: a synchronous write, queued for the store's writer, which
// also runs the index), and the run reports their rate and latency.
// --summaries-every MS: a reader thread also asks for one user's conversation summaries (the
// users list's query, which merges the unindexed messages in) every MS milliseconds while the
// producers run, and the run reports their latency.
//
// Prints a table and one line `RESULT {json}`; exits 1 if an append or a read failed.
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/object_id.hpp"
#include "core/time.hpp"
#include "histogram.hpp"
#include "store/sqlite_store.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::size_t messages = 1'000'000, producers = 4, inflight = 2048, conversations = 1000,
              text_bytes = 64, max_batch = 4096, summaries_every_ms = 0, read_positions = 0;
  long min_index_run_us = -1;  // the store's default
  std::string dir;
};

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--help" || k == "-h") return false;
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    auto num = [&](std::size_t& out) { out = std::strtoull(v.c_str(), nullptr, 10); return out > 0; };
    if (k == "--messages") { if (!num(a.messages)) return false; }
    else if (k == "--producers") { if (!num(a.producers)) return false; }
    else if (k == "--inflight") { if (!num(a.inflight)) return false; }
    else if (k == "--conversations") { if (!num(a.conversations)) return false; }
    else if (k == "--text-bytes") { if (!num(a.text_bytes)) return false; }
    else if (k == "--max-batch") { if (!num(a.max_batch)) return false; }
    else if (k == "--summaries-every") { if (!num(a.summaries_every_ms)) return false; }
    else if (k == "--read-positions") { if (!num(a.read_positions)) return false; }
    else if (k == "--min-index-run-us") a.min_index_run_us = std::strtol(v.c_str(), nullptr, 10);
    else if (k == "--dir") a.dir = v;
    else return false;
  }
  return true;
}

/// A producer's window: at most `limit` appends unacknowledged.
struct Window {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t in_flight = 0;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace chat;
  Args a;
  if (!parse(argc, argv, a)) {
    std::fputs("usage: chat-store-bench [--messages N] [--producers P] [--inflight W] [--conversations C]\n"
               "                        [--text-bytes B] [--max-batch N] [--summaries-every MS]\n"
               "                        [--read-positions N]\n"
               "                        [--dir DIR]\n", stderr);
    return 2;
  }
  namespace fs = std::filesystem;
  const bool temp = a.dir.empty();
  if (temp) {
    char tmpl[] = "/tmp/chat-store-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) return 1;
    a.dir = tmpl;
  }
  store::SqliteOptions so;
  so.path = (fs::path(a.dir) / "bench.db").string();
  so.max_batch = a.max_batch;
  so.max_pending_writes = std::max<std::size_t>(65536, a.producers * a.inflight);
  if (a.min_index_run_us >= 0) so.min_index_run_us = static_cast<int>(a.min_index_run_us);
  auto opened = store::SqliteStore::open(so);
  if (!opened) {
    std::fprintf(stderr, "chat-store-bench: %s\n", opened.err().message.c_str());
    return 1;
  }
  auto& st = *opened.value();

  // Users of the conversations (ids only: the store does not check them on append).
  std::vector<std::string> users(a.conversations * 2);
  for (auto& u : users) u = new_object_id();
  const std::string text(a.text_bytes, 'x');

  std::atomic<std::uint64_t> acked{0}, failed{0};
  std::vector<bench::Histogram> hist(a.producers);
  std::vector<std::mutex> hist_mu(a.producers);
  const std::uint64_t commits_before = st.commits();
  const std::uint64_t index_commits_before = st.index_commits();
  const auto t0 = Clock::now();
  // The reader: users[0] is in conversation 0, which producer 0 writes to first.
  std::atomic<bool> producing{true};
  bench::Histogram summaries_hist;
  std::uint64_t summaries_failed = 0;
  std::thread reader;
  if (a.summaries_every_ms > 0) {
    reader = std::thread([&] {
      while (producing.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(a.summaries_every_ms));
        const auto start = Clock::now();
        auto r = st.conversation_summaries(users[0]);
        summaries_hist.record(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
        if (!r) ++summaries_failed;
      }
    });
  }
  // The read positions: thread t marks conversation t's receiver's read up to its newest message
  // (an id above every id: the store clamps it), once the conversation exists.
  bench::Histogram marks_hist;
  std::mutex marks_mu;
  std::atomic<std::uint64_t> marks{0}, marks_failed{0};
  std::vector<std::thread> markers;
  for (std::size_t t = 0; t < a.read_positions; ++t) {
    markers.emplace_back([&, t] {
      const std::size_t c = t % a.conversations;
      const std::string conversation = store::direct_conversation_id(users[2 * c], users[2 * c + 1]);
      const std::string up_to(24, 'f');
      while (producing.load(std::memory_order_relaxed)) {
        const auto start = Clock::now();
        auto r = st.mark_read(conversation, users[2 * c + 1], up_to);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        if (!r && r.code() == errc::not_found) {  // no message in it yet
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        if (!r) ++marks_failed;
        ++marks;
        std::lock_guard lock(marks_mu);
        marks_hist.record(us);
      }
    });
  }
  std::vector<std::thread> threads;
  for (std::size_t p = 0; p < a.producers; ++p) {
    threads.emplace_back([&, p] {
      Window w;
      const std::size_t n = a.messages / a.producers + (p < a.messages % a.producers ? 1 : 0);
      for (std::size_t i = 0; i < n; ++i) {
        {
          std::unique_lock lock(w.mu);
          w.cv.wait(lock, [&] { return w.in_flight < a.inflight; });
          ++w.in_flight;
        }
        const std::size_t c = (p * 7919 + i) % a.conversations;
        store::Message m;
        auto sid = new_stamped_id();
        m.id = std::move(sid.id);
        m.created_at = m.updated_at = sid.ms;
        m.sender_id = users[2 * c];
        m.receiver_id = users[2 * c + 1];
        m.conversation_id = store::direct_conversation_id(m.sender_id, m.receiver_id);
        m.text = text;
        m.client_msg_id = std::to_string(p) + "-" + std::to_string(i);
        const auto sent = Clock::now();
        st.append_message(std::move(m), [&, p, sent](result<store::Appended> r) {
          const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count();
          {
            std::lock_guard lock(hist_mu[p]);
            hist[p].record(us);
          }
          (r ? acked : failed).fetch_add(1, std::memory_order_relaxed);
          std::lock_guard lock(w.mu);
          --w.in_flight;
          w.cv.notify_one();
        });
      }
      std::unique_lock lock(w.mu);
      w.cv.wait(lock, [&] { return w.in_flight == 0; });
    });
  }
  for (auto& t : threads) t.join();
  producing.store(false);
  if (reader.joinable()) reader.join();
  for (auto& m : markers) m.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::uint64_t commits = st.commits() - commits_before;
  st.flush();  // and everything in the main database
  const double indexed_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::uint64_t index_commits = st.index_commits() - index_commits_before;
  bench::Histogram all;
  for (auto& h : hist) all.merge(h);
  const double rate = static_cast<double>(acked.load()) / secs;
  const auto db_bytes = fs::exists(so.path) ? fs::file_size(so.path) : 0;

  std::printf("chat-store-bench: SqliteStore (WAL, synchronous=FULL, group commit ≤ %zu), %zu producers × %zu in flight\n",
              a.max_batch, a.producers, a.inflight);
  std::printf("  appended %llu (failed %llu) in %.2f s: %.0f messages/s durable\n",
              static_cast<unsigned long long>(acked.load()), static_cast<unsigned long long>(failed.load()), secs, rate);
  std::printf("  %llu commits (%.0f/s), %.1f messages per commit\n", static_cast<unsigned long long>(commits),
              commits / secs, commits ? static_cast<double>(acked.load()) / commits : 0.0);
  std::printf("  all in the main database after %.2f s: %.0f messages/s sustained"
              " (%llu index transactions)\n",
              indexed_secs, static_cast<double>(acked.load()) / indexed_secs,
              static_cast<unsigned long long>(index_commits));
  std::printf("  append → durable (ms): p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
              all.percentile(0.5) / 1000.0, all.percentile(0.9) / 1000.0, all.percentile(0.99) / 1000.0,
              all.percentile(0.999) / 1000.0, all.max() / 1000.0);

  if (a.summaries_every_ms > 0)
    std::printf("  summaries of one user every %zu ms (us): %llu calls (%llu failed), p50 %lld  p99 %lld  max %lld\n",
                a.summaries_every_ms, static_cast<unsigned long long>(summaries_hist.count()),
                static_cast<unsigned long long>(summaries_failed),
                static_cast<long long>(summaries_hist.percentile(0.5)),
                static_cast<long long>(summaries_hist.percentile(0.99)),
                static_cast<long long>(summaries_hist.max()));

  if (a.read_positions > 0)
    std::printf("  read positions by %zu threads: %llu (%.0f/s, %llu failed), latency (us) p50 %lld  p99 %lld  max %lld\n",
                a.read_positions, static_cast<unsigned long long>(marks.load()),
                static_cast<double>(marks.load()) / secs,
                static_cast<unsigned long long>(marks_failed.load()),
                static_cast<long long>(marks_hist.percentile(0.5)),
                static_cast<long long>(marks_hist.percentile(0.99)),
                static_cast<long long>(marks_hist.max()));

  boost::json::object o;
  o["bench"] = "store";
  o["messages"] = a.messages;
  o["producers"] = a.producers;
  o["inflight"] = a.inflight;
  o["conversations"] = a.conversations;
  o["text_bytes"] = a.text_bytes;
  o["max_batch"] = a.max_batch;
  o["acked"] = acked.load();
  o["failed"] = failed.load();
  o["seconds"] = secs;
  o["messages_per_s"] = rate;
  o["commits"] = commits;
  o["indexed_seconds"] = indexed_secs;
  o["indexed_messages_per_s"] = static_cast<double>(acked.load()) / indexed_secs;
  o["index_commits"] = index_commits;
  o["db_bytes"] = db_bytes;
  o["latency_us"] = all.summary_json();
  if (a.read_positions > 0) {
    o["read_positions"] = a.read_positions;
    o["read_positions_done"] = marks.load();
    o["read_positions_failed"] = marks_failed.load();
    o["read_position_us"] = marks_hist.summary_json();
  }
  if (a.summaries_every_ms > 0) {
    o["summaries_every_ms"] = a.summaries_every_ms;
    o["summaries_failed"] = summaries_failed;
    o["summaries_us"] = summaries_hist.summary_json();
  }
  std::printf("RESULT %s\n", boost::json::serialize(o).c_str());
  opened.value().reset();
  if (temp) fs::remove_all(a.dir);
  return failed.load() == 0 && summaries_failed == 0 && marks_failed.load() == 0 ? 0 : 1;
}
