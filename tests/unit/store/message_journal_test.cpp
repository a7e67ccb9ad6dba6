#include "store/message_journal.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "unit/store/store_fixtures.hpp"

namespace chat::store {
namespace {

class MessageJournalTest : public ::testing::Test {
 protected:
  MessageJournal::Options options(std::size_t segment_bytes = 1u << 20) const {
    MessageJournal::Options o;
    o.base_path = (dir_.path() / "chat.db.msglog").string();
    o.segment_bytes = segment_bytes;
    return o;
  }

  std::unique_ptr<MessageJournal> open(std::vector<JournalRecord>& recovered,
                                       std::size_t segment_bytes = 1u << 20) {
    auto r = MessageJournal::open(options(segment_bytes), recovered);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return r.ok() ? std::move(r).value() : nullptr;
  }

  std::vector<JournalRecord> reopen(std::size_t segment_bytes = 1u << 20) {
    std::vector<JournalRecord> recovered;
    open(recovered, segment_bytes);
    return recovered;
  }

  static Message message(std::uint64_t n, std::size_t text_bytes = 40) {
    Message m;
    m.id = "id-" + std::to_string(n);
    m.conversation_id = "conv";
    m.sender_id = "alice";
    m.receiver_id = "bob";
    m.text = std::string(text_bytes, static_cast<char>('a' + n % 26));
    m.image = n % 2 ? "" : "/api/media/x";
    m.client_msg_id = "k" + std::to_string(n);
    m.created_at = 1700000000000 + static_cast<std::int64_t>(n);
    m.updated_at = -static_cast<std::int64_t>(n);
    return m;
  }

  static std::vector<std::uint64_t> seqs(const std::vector<JournalRecord>& records) {
    std::vector<std::uint64_t> out;
    for (const auto& r : records) out.push_back(r.seq);
    return out;
  }

  static std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
    std::vector<std::uint64_t> out;
    for (std::uint64_t s = first; s <= last; ++s) out.push_back(s);
    return out;
  }

  /// `commits` commits of `per_commit` records of 1,000-byte texts, numbered after `seq`;
  /// returns the last seq.
  static std::uint64_t fill(MessageJournal& j, int commits, int per_commit, std::uint64_t seq) {
    for (int c = 0; c < commits; ++c) {
      for (int k = 0; k < per_commit; ++k) {
        ++seq;
        EXPECT_TRUE(j.add(seq, message(seq, 1000)).ok());
      }
      EXPECT_TRUE(j.commit().ok());
    }
    return seq;
  }

  std::string segment(std::size_t n) const {
    return MessageJournal::segment_path(options().base_path, n);
  }

  fixtures::TempDir dir_{"chat_journal_test_"};
};

TEST_F(MessageJournalTest, CommittedRecordsComeBackInOrderWithEveryField) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    ASSERT_TRUE(j);
    EXPECT_TRUE(recovered.empty());
    for (std::uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(j->add(s, message(s)).ok());
    EXPECT_EQ(j->batched(), 5u);
    ASSERT_TRUE(j->commit().ok());
    EXPECT_EQ(j->batched(), 0u);
    ASSERT_TRUE(j->add(6, message(6)).ok());
    ASSERT_TRUE(j->commit().ok());
    ASSERT_TRUE(j->add(7, message(7)).ok());  // never committed: not durable, not recovered
  }
  const auto recovered = reopen();
  ASSERT_EQ(seqs(recovered), range(1, 6));
  const Message want = message(4);
  const Message& got = recovered[3].m;
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.conversation_id, want.conversation_id);
  EXPECT_EQ(got.sender_id, want.sender_id);
  EXPECT_EQ(got.receiver_id, want.receiver_id);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.image, want.image);
  EXPECT_EQ(got.client_msg_id, want.client_msg_id);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.updated_at, want.updated_at);
}

// The on-disk checksums are CRC-32 (ISO-HDLC, Boost's crc_32_type here), as in journals written
// by earlier versions: a change of algorithm would make an upgraded chatd drop a crashed
// predecessor's acknowledged messages as torn records.
TEST_F(MessageJournalTest, ChecksumsAreTheStandardCrc32) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    ASSERT_TRUE(j->add(7, message(7)).ok());
    ASSERT_TRUE(j->commit().ok());
  }
  std::string data(4096, '\0');
  {
    const int fd = ::open(segment(0).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  auto u32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= std::uint32_t{static_cast<unsigned char>(data[at + i])} << (8 * i);
    return v;
  };
  auto crc = [&](std::initializer_list<std::pair<std::size_t, std::size_t>> ranges) {
    boost::crc_32_type c;
    for (auto [at, n] : ranges) c.process_bytes(data.data() + at, n);
    return c.checksum();
  };
  // Header: magic, epoch, base seq (24 bytes), then their CRC. Record: payload length, the CRC
  // of (epoch, seq, payload), seq, payload.
  EXPECT_EQ(u32(24), crc({{0, 24}}));
  const std::uint32_t len = u32(32);
  ASSERT_GT(len, 0u);
  ASSERT_LT(48 + len, data.size());
  EXPECT_EQ(u32(36), crc({{8, 8}, {40, 8 + len}}));
  EXPECT_EQ(seqs(reopen()), std::vector<std::uint64_t>{7});
}

// A torn last commit (here: a byte of its record changed) ends the journal before that record.
TEST_F(MessageJournalTest, ReadingStopsAtTheFirstRecordThatFailsItsChecksum) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    for (std::uint64_t s = 1; s <= 3; ++s) ASSERT_TRUE(j->add(s, message(s)).ok());
    ASSERT_TRUE(j->commit().ok());
    for (std::uint64_t s = 4; s <= 6; ++s) ASSERT_TRUE(j->add(s, message(s)).ok());
    ASSERT_TRUE(j->commit().ok());
  }
  // Record 5's text (40 × 'f', in no other record) is in the segment's first page.
  const std::string m = message(5).text;
  {
    const int fd = ::open(segment(0).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    std::string data(4096, '\0');
    ASSERT_GT(::pread(fd, data.data(), data.size(), 0), 0);
    const auto at = data.find(m);
    ASSERT_NE(at, std::string::npos);
    const char flipped = static_cast<char>(data[at] ^ 0x01);
    ASSERT_EQ(::pwrite(fd, &flipped, 1, static_cast<off_t>(at)), 1);
    ::close(fd);
  }
  EXPECT_EQ(seqs(reopen()), range(1, 4));
}

// Batches larger than a segment's room continue in the next segment; order is kept across them.
TEST_F(MessageJournalTest, CommitsSpanSegments) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    ASSERT_EQ(fill(*j, 5, 400, 0), 2000u);
    EXPECT_GE(j->segment_files(), 2u);  // ~2 MB of records in 1 MiB segments
  }
  EXPECT_EQ(seqs(reopen()), range(1, 2000));
}

// Released segments are reused under a new epoch: what they held before is never read again,
// even where the new records end in the middle of the old ones.
TEST_F(MessageJournalTest, ReusedSegmentsNeverYieldTheirOldRecords) {
  std::vector<JournalRecord> recovered;
  auto j = open(recovered);
  std::uint64_t s = fill(*j, 6, 400, 0);
  const std::size_t files = j->segment_files();
  j->release(s);  // all but the segment being written are reused
  s = fill(*j, 1, 900, s);  // fills the current segment, then into a reused one
  EXPECT_LE(j->segment_files(), files) << "released segments were not reused";
  j.reset();
  const auto after = reopen();
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.back().seq, s);
  // Strictly increasing and contiguous up to the end: nothing stale in between.
  for (std::size_t i = 1; i < after.size(); ++i) ASSERT_EQ(after[i].seq, after[i - 1].seq + 1);
  EXPECT_GE(after.front().seq, 2401u - 900u) << "records of released segments came back";
}

TEST_F(MessageJournalTest, ClearLeavesNothingToRecover) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    for (std::uint64_t s = 1; s <= 10; ++s) ASSERT_TRUE(j->add(s, message(s)).ok());
    ASSERT_TRUE(j->commit().ok());
    j->clear();
  }
  std::vector<JournalRecord> recovered;
  auto j = open(recovered);
  EXPECT_TRUE(recovered.empty());
  // Numbering may start over: the cleared segment is reused, and its old record 2 follows the
  // new record 1 exactly (same size); it carries the old epoch, so it is not read.
  ASSERT_TRUE(j->add(1, message(9)).ok());
  ASSERT_TRUE(j->commit().ok());
  j.reset();
  const auto after = reopen();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].m.id, message(9).id);
}

// Records recovered at open stay readable until cleared; a new run writes to a fresh segment.
TEST_F(MessageJournalTest, RecoveredRecordsSurviveASecondCrash) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    for (std::uint64_t s = 1; s <= 3; ++s) ASSERT_TRUE(j->add(s, message(s)).ok());
    ASSERT_TRUE(j->commit().ok());
  }
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    ASSERT_EQ(seqs(recovered), range(1, 3));
    ASSERT_TRUE(j->add(4, message(4)).ok());
    ASSERT_TRUE(j->commit().ok());
  }
  EXPECT_EQ(seqs(reopen()), range(1, 4));
}

TEST_F(MessageJournalTest, ASecondOwnerIsRefused) {
  std::vector<JournalRecord> recovered;
  auto first = open(recovered);
  ASSERT_TRUE(first);
  auto second = MessageJournal::open(options(), recovered);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.code(), errc::unavailable);
  EXPECT_NE(second.err().message.find("another process"), std::string::npos);
  first.reset();
  EXPECT_TRUE(MessageJournal::open(options(), recovered).ok());
}

// A previous owner still closing: open() waits up to lock_wait_ms for the lock.
TEST_F(MessageJournalTest, OpenWaitsForAPreviousOwnerToClose) {
  std::vector<JournalRecord> recovered;
  auto first = open(recovered);
  ASSERT_TRUE(first);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    first.reset();
  });
  MessageJournal::Options o = options();
  o.lock_wait_ms = 10'000;
  const auto t0 = std::chrono::steady_clock::now();
  auto second = MessageJournal::open(o, recovered);
  closer.join();
  EXPECT_TRUE(second.ok()) << (second.ok() ? "" : second.err().message);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
}

TEST_F(MessageJournalTest, ARecordLargerThanASegmentIsRefusedAlone) {
  std::vector<JournalRecord> recovered;
  auto j = open(recovered);
  ASSERT_TRUE(j->add(1, message(1)).ok());
  auto big = j->add(2, message(2, 2u << 20));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.code(), errc::invalid_argument);
  ASSERT_TRUE(j->add(3, message(3)).ok());
  ASSERT_TRUE(j->commit().ok());
  j.reset();
  EXPECT_EQ(seqs(reopen()), (std::vector<std::uint64_t>{1, 3}));
}

// Files that are not segments, and segments whose header is not valid, are not read.
TEST_F(MessageJournalTest, GarbageSegmentsAreIgnored) {
  {
    std::vector<JournalRecord> recovered;
    auto j = open(recovered);
    ASSERT_TRUE(j->add(1, message(1)).ok());
    ASSERT_TRUE(j->commit().ok());
  }
  {
    const int fd = ::open(segment(7).c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    const std::string junk(5000, 'j');
    ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  EXPECT_EQ(seqs(reopen()), range(1, 1));
}

}  // namespace
}  // namespace chat::store
