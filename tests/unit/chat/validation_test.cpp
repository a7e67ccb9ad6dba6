#include "chat/validation.hpp"

#include <gtest/gtest.h>

#include <string>

#include "test_images.hpp"
#include "core/base64.hpp"

namespace chat {
namespace {

using test::data_url;

// ---- emails ----

TEST(NormalizeEmail, TrimsAndLowerCases) {
  EXPECT_EQ(normalize_email("  Alice@Example.COM\t\n"), "alice@example.com");
  EXPECT_EQ(normalize_email("bob@example.com"), "bob@example.com");
  EXPECT_EQ(normalize_email(""), "");
  EXPECT_EQ(normalize_email("   "), "");
  // Inner spaces are kept (and then rejected by is_valid_email).
  EXPECT_EQ(normalize_email(" a b@c.de "), "a b@c.de");
}

TEST(IsValidEmail, AcceptsOrdinaryAddresses) {
  for (const char* good : {"a@b.co", "alice@example.com", "first.last+tag@sub.example.co.uk",
                           "x_y-z@example.io", "user123@domain-with-dash.org"})
    EXPECT_TRUE(is_valid_email(good)) << good;
  // Limits: local part of exactly 64 and a total of 254 are fine.
  EXPECT_TRUE(is_valid_email(std::string(64, 'a') + "@example.com"));
  const std::string domain = std::string(240, 'd') + ".com";  // 244 chars
  EXPECT_TRUE(is_valid_email("123456789@" + domain));        // 254 chars
}

TEST(IsValidEmail, RejectsMalformedAddresses) {
  for (const char* bad :
       {"", "a", "@", "a@", "@b.co", "ab.co", "a@b", "a@.co", "a@b.", "a@b..co", "a@@b.co",
        "a@b@c.co", "a b@c.co", "a@b c.co", "<a>@b.co", "a@b.co>", "a,b@c.co", "a;b@c.co",
        "a:b@c.co", "\"a\"@b.co", "a@[1.2.3.4]", "a\\b@c.co", "a(b)@c.co", "a\t@b.co",
        "a\x7f@b.co", "a\n@b.co"})
    EXPECT_FALSE(is_valid_email(bad)) << '"' << bad << '"';
  EXPECT_FALSE(is_valid_email(std::string(65, 'a') + "@example.com"));
  EXPECT_FALSE(is_valid_email("1234567890@" + std::string(240, 'd') + ".com"));  // 255
  EXPECT_FALSE(is_valid_email(std::string("a\0b@c.co", 8)));
}

// ---- utf8_length ----

TEST(Utf8Length, CountsCodePoints) {
  EXPECT_EQ(utf8_length(""), 0);
  EXPECT_EQ(utf8_length("abc"), 3);
  EXPECT_EQ(utf8_length("\xc3\xa9"), 1);              // é
  EXPECT_EQ(utf8_length("\xe2\x82\xac"), 1);          // €
  EXPECT_EQ(utf8_length("\xf0\x9f\x98\x80"), 1);      // 😀
  EXPECT_EQ(utf8_length("a\xe2\x82\xac\xf0\x9f\x98\x80z"), 4);
  EXPECT_EQ(utf8_length(std::string(1000, 'x')), 1000);
  std::string many;
  for (int i = 0; i < 100; ++i) many += "\xe4\xbd\xa0";  // 你
  EXPECT_EQ(utf8_length(many), 100);
  EXPECT_EQ(utf8_length(std::string("a\0b", 3)), 3);  // NUL is a code point
}

TEST(Utf8Length, InvalidIsMinusOne) {
  for (std::string bad : {"\xff", "\xfe", "\x80", "a\xbf", "\xc3", "\xe2\x82", "\xf0\x9f\x98",
                          "\xc3\x28", "\xe2\x28\xa1", "\xf0\x28\x8c\xbc", "\xf8\x88\x80\x80\x80",
                          "ok\xc3"})
    EXPECT_EQ(utf8_length(bad), -1) << testing::PrintToString(bad);
}

// BUG: utf8_length() accepts byte sequences that are not valid UTF-8 (RFC 3629): overlong forms
// (C0 AF = '/' in 2 bytes, E0 80 AF), UTF-16 surrogates (ED A0 80 = U+D800) and code points above
// U+10FFFF (F4 90 80 80, F5..F7 lead bytes). It only checks lead/continuation bit patterns.
// validate_send() relies on it to refuse text that is "not valid UTF-8"; such text would be sent to
// browsers inside WebSocket text frames, and a browser must fail a WebSocket connection that
// receives invalid UTF-8 (RFC 6455 §8.1), so one message could disconnect its receiver.
// Fix: reject C0/C1 and F5..FF lead bytes, E0 followed by < A0, ED followed by >= A0, F0 followed
// by < 90, F4 followed by >= 90.
TEST(Utf8Length, RejectsOverlongSurrogatesAndOutOfRange) {
  for (std::string bad : {"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xed\xa0\x80",
                          "\xed\xbf\xbf", "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80",
                          "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf"})
    EXPECT_EQ(utf8_length(bad), -1) << testing::PrintToString(bad);
  // The boundaries that are valid.
  EXPECT_EQ(utf8_length("\xc2\x80"), 1);          // U+0080
  EXPECT_EQ(utf8_length("\xe0\xa0\x80"), 1);      // U+0800
  EXPECT_EQ(utf8_length("\xed\x9f\xbf"), 1);      // U+D7FF
  EXPECT_EQ(utf8_length("\xee\x80\x80"), 1);      // U+E000
  EXPECT_EQ(utf8_length("\xf0\x90\x80\x80"), 1);  // U+10000
  EXPECT_EQ(utf8_length("\xf4\x8f\xbf\xbf"), 1);  // U+10FFFF
}

TEST(Trim, AsciiWhitespaceBothEnds) {
  EXPECT_EQ(trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(trim("\f\vx\v"), "x");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t "), "");
}

// ---- images ----

TEST(SniffImageType, MagicNumbers) {
  EXPECT_STREQ(sniff_image_type(test::tiny_png()), "image/png");
  EXPECT_STREQ(sniff_image_type(test::tiny_jpeg()), "image/jpeg");
  EXPECT_STREQ(sniff_image_type(test::tiny_gif()), "image/gif");
  EXPECT_STREQ(sniff_image_type(std::string("GIF87a") + std::string(10, '\0')), "image/gif");
  EXPECT_STREQ(sniff_image_type(test::tiny_webp()), "image/webp");
}

TEST(SniffImageType, UnknownOrTruncated) {
  EXPECT_EQ(sniff_image_type(""), nullptr);
  EXPECT_EQ(sniff_image_type("\x89PNG"), nullptr);  // truncated signature
  EXPECT_EQ(sniff_image_type("\xff\xd8"), nullptr);
  EXPECT_EQ(sniff_image_type("GIF88a......"), nullptr);
  EXPECT_EQ(sniff_image_type("RIFF\x10\0\0\0WAVEfmt "), nullptr);  // RIFF, but audio
  EXPECT_EQ(sniff_image_type("RIFF\x10\0\0\0WEB"), nullptr);
  EXPECT_EQ(sniff_image_type("<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), nullptr);
  EXPECT_EQ(sniff_image_type("%PDF-1.4"), nullptr);
}

TEST(ParseImageDataUrl, ValidImagesOfEveryType) {
  struct Case {
    const char* mime;
    std::string bytes;
    const char* ext;
  };
  for (const auto& c : {Case{"image/png", test::tiny_png(), "png"},
                        Case{"image/jpeg", test::tiny_jpeg(), "jpg"},
                        Case{"image/gif", test::tiny_gif(), "gif"},
                        Case{"image/webp", test::tiny_webp(), "webp"}}) {
    auto r = parse_image_data_url(data_url(c.mime, c.bytes), 5 << 20);
    ASSERT_TRUE(r.ok()) << c.mime << ": " << r.err().message;
    EXPECT_EQ(r->content_type, c.mime);
    EXPECT_EQ(r->extension, c.ext);
    EXPECT_EQ(r->bytes, c.bytes) << c.mime;
  }
}

TEST(ParseImageDataUrl, LenientSpellings) {
  auto jpg = parse_image_data_url(data_url("image/jpg", test::tiny_jpeg()), 1 << 20);
  ASSERT_TRUE(jpg.ok()) << jpg.err().message;
  EXPECT_EQ(jpg->content_type, "image/jpeg");
  EXPECT_EQ(jpg->extension, "jpg");

  auto upper = parse_image_data_url(
      "data:IMAGE/PNG;BASE64," + base64_encode(test::tiny_png()), 1 << 20);
  ASSERT_TRUE(upper.ok()) << upper.err().message;
  EXPECT_EQ(upper->content_type, "image/png");
}

TEST(ParseImageDataUrl, DeclaredTypeMustMatchTheBytes) {
  auto r = parse_image_data_url(data_url("image/png", test::tiny_jpeg()), 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::invalid_argument);
  EXPECT_FALSE(r.err().message.empty());

  auto text = parse_image_data_url(data_url("image/gif", "just some text"), 1 << 20);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.code(), errc::invalid_argument);
}

TEST(ParseImageDataUrl, RejectsMalformedInput) {
  const std::string png64 = base64_encode(test::tiny_png());
  for (const std::string& bad : {
           std::string("http://example.com/a.png"),
           std::string("javascript:alert(1)"),
           std::string("data:image/png;base64"),             // no comma
           "data:image/png," + png64,                         // not marked base64
           std::string("data:image/png;base64,"),             // nothing
           std::string("data:image/png;base64,!!!notbase64"),  // not base64
           "data:image/png;base64," + png64.substr(1),        // broken padding/length
           "data:image/png;base64, " + png64,                 // whitespace
           "data:;base64," + png64,                           // no type
           std::string(""),
       }) {
    auto r = parse_image_data_url(bad, 1 << 20);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.code(), errc::invalid_argument) << bad;
    EXPECT_FALSE(r.err().message.empty());
  }
}

TEST(ParseImageDataUrl, UnsupportedTypes) {
  const std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\"><script/></svg>";
  for (const char* mime : {"image/svg+xml", "text/html", "image/bmp", "application/pdf"}) {
    auto r = parse_image_data_url(data_url(mime, svg), 1 << 20);
    ASSERT_FALSE(r.ok()) << mime;
    EXPECT_EQ(r.code(), errc::invalid_argument) << mime;
    EXPECT_NE(r.err().message.find("png"), std::string::npos) << r.err().message;
  }
}

TEST(ParseImageDataUrl, SizeLimit) {
  const std::size_t max = 1000;
  const std::string exact = test::png_of_size(max);
  auto ok = parse_image_data_url(data_url("image/png", exact), max);
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  EXPECT_EQ(ok->bytes.size(), max);

  for (std::size_t size : {max + 1, max + 2, max + 3, max + 4, 2 * max, 100 * max}) {
    auto r = parse_image_data_url(data_url("image/png", test::png_of_size(size)), max);
    ASSERT_FALSE(r.ok()) << size;
    EXPECT_EQ(r.code(), errc::too_large) << size;
  }
}

TEST(FieldErrors, GroupsMessagesByFieldInOrder) {
  FieldErrors e;
  EXPECT_TRUE(e.empty());
  e.add("email", "a");
  e.add("password", "b");
  e.add("email", "c");
  EXPECT_FALSE(e.empty());
  ASSERT_EQ(e.fields().size(), 2u);
  EXPECT_EQ(e.fields()[0].first, "email");
  EXPECT_EQ(e.fields()[0].second, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(e.fields()[1].first, "password");
}

}  // namespace
}  // namespace chat
