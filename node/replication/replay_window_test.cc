#include "node/replication/replay_window.h"

#include "gtest/gtest.h"

namespace unimeter::replication {
namespace {

TEST(ReplayWindowTest, AcceptsEachIdOnceInAnyOrder) {
  ReplayWindow window;
  EXPECT_TRUE(window.Accept(10));
  EXPECT_TRUE(window.Accept(12));
  EXPECT_TRUE(window.Accept(11));  // Reordered, still new.
  EXPECT_FALSE(window.Accept(10));
  EXPECT_FALSE(window.Accept(11));
  EXPECT_FALSE(window.Accept(12));
  EXPECT_TRUE(window.Accept(9));  // Older than the newest but never seen.
  EXPECT_FALSE(window.Accept(9));
}

TEST(ReplayWindowTest, RefusesIdsOlderThanTheWindow) {
  ReplayWindow window;
  ASSERT_TRUE(window.Accept(10));
  ASSERT_TRUE(window.Accept(15 + ReplayWindow::kWindow));
  EXPECT_FALSE(window.Accept(12));  // Unseen but too old to tell from a replay.
  EXPECT_FALSE(window.Accept(15));  // The oldest slot's id: just left the window.
  EXPECT_TRUE(window.Accept(16));   // The oldest id the window still holds.
  EXPECT_FALSE(window.Accept(16));
}

TEST(ReplayWindowTest, SlotsReusedByNewerIdsForgetTheOldOnes) {
  ReplayWindow window;
  for (uint64_t id = 1; id <= 100; ++id) ASSERT_TRUE(window.Accept(id));
  // Each new id takes the slot of the id kWindow before it: it must read as unseen, also
  // when it jumps over many slots at once.
  EXPECT_TRUE(window.Accept(100 + ReplayWindow::kWindow - 10));
  for (uint64_t id = 100 + ReplayWindow::kWindow - 9; id <= 100 + ReplayWindow::kWindow; ++id) {
    EXPECT_TRUE(window.Accept(id)) << id;
  }
  EXPECT_FALSE(window.Accept(100 + ReplayWindow::kWindow - 10));
  EXPECT_FALSE(window.Accept(100));  // Left the window.
  EXPECT_TRUE(window.Accept(200));   // Inside the window, never seen.
}

TEST(ReplayWindowTest, IdsWrapAroundZero) {
  ReplayWindow window;
  const uint64_t near_end = ~uint64_t{0} - 2;  // Forwarders start at a random id.
  for (uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(window.Accept(near_end + i)) << i;  // Wraps.
  EXPECT_FALSE(window.Accept(near_end));
  EXPECT_FALSE(window.Accept(1));
  EXPECT_TRUE(window.Accept(7));
}

TEST(ReplayWindowTest, ResetForgetsEverything) {
  ReplayWindow window;
  ASSERT_TRUE(window.Accept(1'000'000));
  window.Reset();
  EXPECT_TRUE(window.Accept(1));  // A restarted process numbers from the start.
  EXPECT_TRUE(window.Accept(1'000'000));
}

}  // namespace
}  // namespace unimeter::replication
