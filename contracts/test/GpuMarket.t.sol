// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GpuMarket} from "../src/GpuMarket.sol";
import {Base} from "./Base.sol";

contract GpuMarketTest is Base {
    bytes32 internal constant JOB = keccak256("job-1");

    function test_wholeJobSettlesWithExactBalances() public {
        uint64 before = deposit(dev);
        open(JOB, 10e6);
        eq(deposit(dev), before - 10e6, "escrowed");
        commit(JOB, 6e6);
        (, uint64 locked) = stakeOf(prov);
        eq(locked, MIN_STAKE, "stake locked");
        vm.warp(block.timestamp + WINDOW);
        market.finalize(JOB);
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Settled), "settled");
        // fee 2.5% of 6 = 0.15; 20% of the fee burned
        eq(earnings(prov), 5_850_000, "provider");
        eq(market.treasuryBalance(), 120_000, "treasury");
        eq(market.burnBalance(), 30_000, "burn");
        eq(deposit(dev), before - 6e6, "refund of the unused 4");
        (, locked) = stakeOf(prov);
        eq(locked, 0, "stake unlocked");

        uint256 wallet = usd.balanceOf(prov);
        vm.prank(prov);
        market.withdrawEarnings();
        eq(usd.balanceOf(prov), wallet + 5_850_000, "withdrawn");
        market.withdrawTreasury();
        eq(usd.balanceOf(treasury), 120_000, "treasury paid");
        market.burn();
        eq(usd.balanceOf(market.BURN_ADDRESS()), 30_000, "burned");
        eq(market.treasuryBalance(), 0, "treasury paid out");
        eq(market.burnBalance(), 0, "burn share paid out");

        // the protocol's word keeps its always-set bit through both payouts (so the next
        // finalize does not create it again), and the next fees are counted from zero
        bytes32 next = keccak256("job-2");
        open(next, 10e6);
        commit(next, 10e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(next);
        eq(market.treasuryBalance(), 200_000, "treasury after the payouts");
        eq(market.burnBalance(), 50_000, "burn after the payouts");
    }

    function test_windowEdges() public {
        open(JOB, 10e6);
        commit(JOB, 5e6);
        (,,,, uint32 windowEnd,,) = market.jobs(JOB);
        vm.warp(windowEnd - 1);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WindowOpen.selector, windowEnd, windowEnd - 1));
        market.finalize(JOB);
        vm.prank(dev);
        market.challenge(JOB); // one second before the end: still inside
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Disputed), "disputed");

        bytes32 other = keccak256("job-2");
        open(other, 10e6);
        commit(other, 5e6);
        (,,,, windowEnd,,) = market.jobs(other);
        vm.warp(windowEnd);
        vm.prank(dev);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WindowClosed.selector, windowEnd, windowEnd));
        market.challenge(other);
        market.finalize(other); // exactly at the end: finalizable
        eq(uint8(state(other)), uint8(GpuMarket.State.Settled), "settled at the edge");
    }

    function test_onlyRolesMayDriveJobs() public {
        GpuMarket.Order memory o = order(JOB, 1e6);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.expectRevert();
        market.openJob(o, sig); // no coordinator role
        open(JOB, 1e6);
        bytes32 result = keccak256("r");
        GpuMarket.Sig memory psig = signed(provKey, market.resultDigest(JOB, result, 1e6));
        vm.expectRevert();
        market.commitResult(JOB, result, 1e6, psig);
        commit(JOB, 1e6);
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.NotDeveloperOrVerifier.selector, address(0xBAD)));
        market.challenge(JOB);
        vm.prank(dev);
        market.challenge(JOB);
        vm.expectRevert();
        market.resolve(JOB, true); // no arbiter role
        vm.prank(coordinator);
        vm.expectRevert();
        market.cancel(JOB); // disputed, not open
    }

    function test_badSignaturesAndReplaysFail() public {
        GpuMarket.Order memory o = order(JOB, 1e6);
        GpuMarket.Sig memory stranger = signed(0x5EC, market.orderDigest(o));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.BadSignature.selector, vm.addr(0x5EC)));
        market.openJob(o, stranger);

        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.prank(coordinator);
        market.openJob(o, sig);
        vm.prank(coordinator); // the same order again
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WrongState.selector, JOB, GpuMarket.State.Open));
        market.openJob(o, sig);

        GpuMarket.Order memory other = order(keccak256("job-2"), 1e6); // another job, old signature
        vm.prank(coordinator);
        vm.expectRevert();
        market.openJob(other, sig);

        GpuMarket twin = new GpuMarket(usd, admin, treasury, terms(250, 0, 0)); // another contract
        vm.startPrank(admin);
        twin.grantRole(twin.COORDINATOR_ROLE(), coordinator);
        vm.stopPrank();
        vm.prank(dev);
        usd.approve(address(twin), type(uint256).max);
        vm.prank(dev);
        twin.deposit(10e6);
        vm.prank(coordinator);
        vm.expectRevert();
        twin.openJob(o, sig);

        vm.chainId(999); // another chain
        GpuMarket.Order memory third = order(keccak256("job-3"), 1e6);
        GpuMarket.Sig memory oldChainSig = signed(devKey, market.orderDigest(third));
        vm.chainId(31337);
        vm.prank(coordinator);
        vm.expectRevert();
        market.openJob(third, oldChainSig);
    }

    function test_resultChecks() public {
        open(JOB, 5e6);
        bytes32 result = keccak256("r");
        GpuMarket.Sig memory over = signed(provKey, market.resultDigest(JOB, result, 6e6));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.AmountOverMax.selector, 6e6, 5e6));
        market.commitResult(JOB, result, 6e6, over);
        GpuMarket.Sig memory unknown = signed(0xFEE, market.resultDigest(JOB, result, 1e6));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.BadSignature.selector, vm.addr(0xFEE)));
        market.commitResult(JOB, result, 1e6, unknown);
        GpuMarket.Sig memory signedLess = signed(provKey, market.resultDigest(JOB, result, 1e6));
        vm.prank(coordinator); // the coordinator cannot raise the signed amount
        vm.expectRevert();
        market.commitResult(JOB, result, 2e6, signedLess);
    }

    function test_providerWithoutFreeStakeCannotCommit() public {
        vm.prank(prov);
        market.requestUnstake(MIN_STAKE * 3);
        open(JOB, 1e6);
        bytes32 result = keccak256("r");
        GpuMarket.Sig memory sig = signed(provKey, market.resultDigest(JOB, result, 1e6));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.StakeTooLow.selector, 0, MIN_STAKE));
        market.commitResult(JOB, result, 1e6, sig);
    }

    function test_challengeLostByTheProviderSlashesAndRefunds() public {
        uint64 before = deposit(dev);
        open(JOB, 10e6);
        commit(JOB, 10e6);
        vm.prank(dev);
        market.challenge(JOB);
        vm.prank(arbiter);
        market.resolve(JOB, true);
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Refunded), "refunded");
        eq(deposit(dev), before, "whole escrow back");
        eq(earnings(dev), MIN_STAKE / 2 + BOND, "half the slash and the bond");
        eq(market.treasuryBalance(), MIN_STAKE / 2, "rest of the slash");
        (uint64 s, uint64 locked) = stakeOf(prov);
        eq(s, MIN_STAKE * 2, "stake slashed");
        eq(locked, 0, "nothing locked");
        eq(earnings(prov), 0, "provider unpaid");
    }

    function test_challengeWonByTheProviderPaysItAndTheBond() public {
        open(JOB, 10e6);
        commit(JOB, 10e6);
        vm.prank(dev);
        market.challenge(JOB);
        vm.prank(arbiter);
        market.resolve(JOB, false);
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Settled), "settled");
        eq(earnings(prov), 10e6 - 250_000 + BOND, "pay less fee, plus the bond");
        vm.prank(arbiter);
        vm.expectRevert();
        market.resolve(JOB, true); // terminal: never again
    }

    function test_cancelAndExpireRefund() public {
        uint64 before = deposit(dev);
        open(JOB, 10e6);
        vm.prank(coordinator);
        market.cancel(JOB);
        eq(deposit(dev), before, "cancel refunds");
        bytes32 other = keccak256("job-2");
        open(other, 10e6);
        vm.expectRevert();
        market.expire(other);
        vm.warp(block.timestamp + 1 days + 1);
        market.expire(other);
        eq(deposit(dev), before, "expiry refunds");
        vm.expectRevert();
        market.finalize(other);
    }

    function test_aFarDeadlineIsKeptNotTruncated() public {
        GpuMarket.Order memory o = order(JOB, 1e6);
        o.deadline = uint64(1) << 40; // past what 32 bits of seconds hold
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.prank(coordinator);
        market.openJob(o, sig);
        (,,,, uint32 deadline,,) = market.jobs(JOB);
        eq(deadline, type(uint32).max, "clamped");
        vm.expectRevert();
        market.expire(JOB);
    }

    function test_pauseStopsNewJobsNotWithdrawals() public {
        vm.prank(admin);
        market.pause();
        GpuMarket.Order memory o = order(JOB, 1e6);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.prank(coordinator);
        vm.expectRevert(GpuMarket.EnforcedPause.selector);
        market.openJob(o, sig);
        uint256 wallet = usd.balanceOf(dev);
        vm.prank(dev);
        market.withdraw(1e6);
        eq(usd.balanceOf(dev), wallet + 1e6, "withdrawal while paused");
        ok(market.paused(), "paused");
        vm.prank(admin);
        vm.expectRevert(GpuMarket.EnforcedPause.selector);
        market.pause(); // already
        vm.prank(dev);
        vm.expectRevert(); // not the pauser
        market.unpause();
        vm.prank(admin);
        market.unpause();
        ok(!market.paused(), "running");
        vm.prank(admin);
        vm.expectRevert(GpuMarket.ExpectedPause.selector);
        market.unpause(); // already running
        vm.prank(coordinator);
        market.openJob(o, sig);
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Open), "opened once running");
    }

    function test_termsAreCappedAndSnapshottedPerJob() public {
        vm.prank(admin);
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(terms(1001, 0, 0));
        open(JOB, 10e6);
        vm.prank(admin);
        market.setTerms(terms(1000, 0, 0)); // 10%, for later jobs only
        commit(JOB, 10e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(JOB);
        eq(earnings(prov), 10e6 - 250_000, "the fee in force at open");
        (uint16 firstFee,,,,,,,,) = market.terms(0);
        (uint16 laterFee,,,,,,,,) = market.terms(1);
        eq(firstFee, 250, "terms 0 kept");
        eq(laterFee, 1000, "terms 1 current");
        eq(market.currentTerms().feeBps, 1000, "current");
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.UnknownTerms.selector, 2));
        market.terms(2);
    }

    function test_unstakeWaitsForTheDelay() public {
        vm.prank(prov);
        market.requestUnstake(MIN_STAKE);
        vm.prank(prov);
        vm.expectRevert();
        market.withdrawStake();
        vm.warp(block.timestamp + 7 days);
        uint256 wallet = usd.balanceOf(prov);
        vm.prank(prov);
        market.withdrawStake();
        eq(usd.balanceOf(prov), wallet + MIN_STAKE, "unstaked");
    }

    function test_feeTable() public {
        fund(prov, 500e6, false);
        vm.prank(prov);
        market.stake(500e6); // five jobs committed at once lock five minimum stakes
        uint64 room = type(uint64).max - deposit(dev); // deposit up to the largest amount
        usd.mint(dev, room);
        vm.prank(dev);
        market.deposit(room);
        uint64 largest = type(uint64).max - 1050;
        uint64[5] memory amounts = [uint64(0), 1, 50, 999, largest];
        for (uint256 i = 0; i < amounts.length; ++i) {
            bytes32 id = keccak256(abi.encode("fee", i));
            open(id, amounts[i]);
            commit(id, amounts[i]);
        }
        vm.warp(block.timestamp + WINDOW);
        uint64 paidBefore;
        for (uint256 i = 0; i < amounts.length; ++i) {
            bytes32 id = keccak256(abi.encode("fee", i));
            uint128 treasuryBefore = market.treasuryBalance();
            uint128 burnBefore = market.burnBalance();
            paidBefore = earnings(prov);
            market.finalize(id);
            uint256 fee = uint256(amounts[i]) * 250 / 10_000;
            uint256 burned = fee * 2000 / 10_000;
            eq(earnings(prov) - paidBefore, amounts[i] - fee, "provider gets amount less fee");
            eq(market.treasuryBalance() - treasuryBefore, fee - burned, "treasury");
            eq(market.burnBalance() - burnBefore, burned, "burn");
        }
        // 999 x 2.5% = 24.975 -> 24 (rounded down, the dust stays with the provider)
        ok(uint256(999) * 250 / 10_000 == 24, "rounding down");
    }

    function test_finalizeManySkipsWhatIsNotReady() public {
        bytes32[] memory ids = new bytes32[](3);
        for (uint256 i = 0; i < 3; ++i) {
            ids[i] = keccak256(abi.encode("many", i));
            open(ids[i], 1e6);
        }
        commit(ids[0], 1e6);
        commit(ids[1], 1e6);
        vm.warp(block.timestamp + WINDOW);
        eq(market.finalizeMany(ids), 2, "two were ready");
        eq(market.finalizeMany(ids), 0, "never twice");
        eq(uint8(state(ids[2])), uint8(GpuMarket.State.Open), "the open one untouched");
    }

    /// finalizeMany keeps each account's balances in memory between jobs: an account that is
    /// the developer of one job and the provider of the next must come out exact.
    function test_finalizeManyWithAnAccountOnBothSides() public {
        vm.prank(prov);
        market.deposit(100e6);
        bytes32[] memory ids = new bytes32[](3);
        for (uint256 i = 0; i < 3; ++i) ids[i] = keccak256(abi.encode("both", i));
        open(ids[0], 10e6);
        GpuMarket.Order memory own = order(ids[1], 8e6); // the provider's own job
        GpuMarket.Sig memory sig = signed(provKey, market.orderDigest(own));
        vm.prank(coordinator);
        market.openJob(own, sig);
        open(ids[2], 10e6);
        uint64 devBefore = deposit(dev);
        uint64 provBefore = deposit(prov);
        commit(ids[0], 4e6);
        commit(ids[1], 2e6);
        commit(ids[2], 6e6);
        vm.warp(block.timestamp + WINDOW);
        eq(market.finalizeMany(ids), 3, "all three");
        // fees 2.5%: 0.1, 0.05, 0.15
        eq(earnings(prov), 3_900_000 + 1_950_000 + 5_850_000, "provider paid for all three");
        eq(deposit(prov), provBefore + 6e6, "its own job's unused 6 back");
        eq(deposit(dev), devBefore + 6e6 + 4e6, "the developer's unused 6 and 4 back");
        (, uint64 locked) = stakeOf(prov);
        eq(locked, 0, "every lock released");
        eq(market.treasuryBalance() + market.burnBalance(), 300_000, "fees once each");
    }

    function testFuzz_splitAddsUp(uint64 amount, uint16 feeBps, uint16 burnBps) public {
        amount = uint64(bound(amount, 0, 400e6));
        feeBps = uint16(bound(feeBps, 0, 1000));
        burnBps = uint16(bound(burnBps, 0, 10_000));
        vm.prank(admin);
        market.setTerms(terms(feeBps, burnBps, 5000));
        open(JOB, amount);
        commit(JOB, amount);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(JOB);
        eq(uint256(earnings(prov)) + market.treasuryBalance() + market.burnBalance(), amount,
           "provider + treasury + burn == amount");
    }

    function testFuzz_slashNeverExceedsLockedStake(uint16 slashShare, uint64 extraStake) public {
        slashShare = uint16(bound(slashShare, 0, 10_000));
        extraStake = uint64(bound(extraStake, 0, 300e6));
        fund(prov, extraStake, false);
        if (extraStake > 0) {
            vm.prank(prov);
            market.stake(extraStake);
        }
        vm.prank(admin);
        market.setTerms(terms(250, 0, slashShare));
        (uint64 stakeBefore,) = stakeOf(prov);
        open(JOB, 5e6);
        commit(JOB, 5e6);
        (, uint64 locked) = stakeOf(prov);
        vm.prank(dev);
        market.challenge(JOB);
        vm.prank(arbiter);
        market.resolve(JOB, true);
        (uint64 stakeAfter,) = stakeOf(prov);
        ok(stakeBefore - stakeAfter <= locked, "slash <= locked stake");
        eq(earnings(dev), uint256(MIN_STAKE) * slashShare / 10_000 + BOND, "challenger share");
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}

contract BatchTest is Base {
    function test_openManyAndCommitManyAreAllOrNothing() public {
        GpuMarket.Order[] memory orders = new GpuMarket.Order[](3);
        GpuMarket.Sig[] memory sigs = new GpuMarket.Sig[](3);
        bytes32[] memory ids = new bytes32[](3);
        bytes32[] memory results = new bytes32[](3);
        uint64[] memory amounts = new uint64[](3);
        GpuMarket.Sig[] memory psigs = new GpuMarket.Sig[](3);
        for (uint256 i = 0; i < 3; ++i) {
            ids[i] = keccak256(abi.encode("batch", i));
            orders[i] = order(ids[i], 10e6);
            sigs[i] = signed(devKey, market.orderDigest(orders[i]));
            results[i] = keccak256(abi.encode(i));
            amounts[i] = uint64(i + 1) * 1e6;
            psigs[i] = signed(provKey, market.resultDigest(ids[i], results[i], amounts[i]));
        }
        GpuMarket.Sig memory good = sigs[2];
        sigs[2] = signed(0xBAD, market.orderDigest(orders[2]));
        uint64 before = deposit(dev);
        vm.prank(coordinator);
        vm.expectRevert();
        market.openMany(orders, sigs); // one bad signature: nothing opens
        eq(deposit(dev), before, "untouched");
        sigs[2] = good;
        vm.prank(coordinator);
        market.openMany(orders, sigs);
        eq(deposit(dev), before - 30e6, "three escrowed");
        vm.prank(coordinator);
        market.commitMany(ids, results, amounts, psigs);
        (, uint64 locked) = stakeOf(prov);
        eq(locked, MIN_STAKE * 3, "three stakes locked");
        vm.warp(block.timestamp + WINDOW);
        eq(market.finalizeMany(ids), 3, "all three settle");
        eq(deposit(dev), before - 6e6, "paid 1 + 2 + 3");
    }
}

/// @notice The stake a result locks scales with its amount: `max(minStake, amount *
/// stakeMultiple)`. The commit locks it, a finalize (single or batched) unlocks exactly it, a
/// lost challenge slashes exactly it.
contract ScaledStakeTest is Base {
    bytes32 internal constant SMALL = keccak256("small");
    bytes32 internal constant LARGE = keccak256("large");

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        market.setTerms(scaled(250, 2000, 5000)); // floor 100, 20 x the amount
    }

    function test_aSmallJobLocksTheFloorALargeOneTheMultiple() public {
        open(SMALL, 10e6);
        commit(SMALL, 4e6); // 20 x 4 = 80 < the floor of 100
        (, uint64 locked) = stakeOf(prov);
        eq(locked, MIN_STAKE, "the floor");
        open(LARGE, 10e6);
        commit(LARGE, 9e6); // 20 x 9 = 180
        (, locked) = stakeOf(prov);
        eq(locked, MIN_STAKE + 180e6, "the floor and 20 x the amount");
        vm.warp(block.timestamp + WINDOW);
        market.finalize(LARGE);
        (, locked) = stakeOf(prov);
        eq(locked, MIN_STAKE, "finalize unlocks exactly the large job's 180");
        market.finalize(SMALL);
        (, locked) = stakeOf(prov);
        eq(locked, 0, "and the small job's floor");
        (uint64 staked,) = stakeOf(prov);
        eq(staked, MIN_STAKE * 3, "nothing taken from the stake");
    }

    function test_theScaledNeedIsWhatStakeTooLowNames() public {
        open(LARGE, 20e6);
        bytes32 result = keccak256("r");
        GpuMarket.Sig memory sig = signed(provKey, market.resultDigest(LARGE, result, 16e6));
        vm.prank(coordinator); // 20 x 16 = 320 > the 300 staked
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.StakeTooLow.selector, 300e6, 320e6));
        market.commitResult(LARGE, result, 16e6, sig);
        eq(uint8(state(LARGE)), uint8(GpuMarket.State.Open), "still open");
        commit(LARGE, 15e6); // 300: exactly all of it
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(locked, staked, "all of it locked");
        // the floor alone is refused now, naming the floor
        open(SMALL, 1e6);
        sig = signed(provKey, market.resultDigest(SMALL, result, 1));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.StakeTooLow.selector, 0, MIN_STAKE));
        market.commitResult(SMALL, result, 1, sig);
    }

    /// amount * 255 over 64 bits is over any stake: refused with the whole need, nothing moved
    function test_aNeedOver64BitsIsRefusedNotTruncated() public {
        GpuMarket.Terms memory t = scaled(250, 0, 5000);
        t.stakeMultiple = 255;
        vm.prank(admin);
        market.setTerms(t);
        // 255 x 0x0101010101010101 is 2^64 - 1, so 255 x this is 2^64 + 254: in 64 bits it
        // would wrap to 254, under the floor, and lock only the floor
        uint64 huge = 0x0101010101010102;
        usd.mint(dev, huge);
        vm.prank(dev);
        market.deposit(huge);
        open(LARGE, huge);
        (uint64 stakeBefore, uint64 lockedBefore) = stakeOf(prov);
        bytes32 result = keccak256("r");
        GpuMarket.Sig memory sig = signed(provKey, market.resultDigest(LARGE, result, huge));
        vm.prank(coordinator);
        vm.expectRevert(
            abi.encodeWithSelector(GpuMarket.StakeTooLow.selector, 300e6, uint256(huge) * 255)
        );
        market.commitResult(LARGE, result, huge, sig);
        (uint64 stakeAfter, uint64 lockedAfter) = stakeOf(prov);
        eq(stakeAfter, stakeBefore, "stake untouched");
        eq(lockedAfter, lockedBefore, "lock untouched");
        eq(uint8(state(LARGE)), uint8(GpuMarket.State.Open), "still open");
    }

    function test_finalizeManyUnlocksExactlyWhatEachCommitLocked() public {
        fund(prov, 1_000e6, false);
        vm.prank(prov);
        market.stake(1_000e6);
        uint64[4] memory amounts = [uint64(1e6), 30e6, 5e6, 12e6]; // locks 100, 600, 100, 240
        bytes32[] memory ids = new bytes32[](4);
        uint256 total;
        for (uint256 i = 0; i < 4; ++i) {
            ids[i] = keccak256(abi.encode("scaled", i));
            open(ids[i], 30e6);
            commit(ids[i], amounts[i]);
            total += lockFor(amounts[i], MIN_STAKE, MULTIPLE);
        }
        (, uint64 locked) = stakeOf(prov);
        eq(locked, total, "each commit locks its own");
        eq(total, 1_040e6, "100 + 600 + 100 + 240");
        vm.warp(block.timestamp + WINDOW);
        bytes32[] memory two = new bytes32[](2);
        two[0] = ids[1];
        two[1] = ids[2];
        eq(market.finalizeMany(two), 2, "two settle");
        (, locked) = stakeOf(prov);
        eq(locked, 340e6, "600 and 100 unlocked");
        eq(market.finalizeMany(ids), 2, "the other two");
        (, locked) = stakeOf(prov);
        eq(locked, 0, "every lock released, none twice");
    }

    function test_aLostChallengeSlashesTheScaledStake() public {
        uint64 before = deposit(dev);
        open(LARGE, 10e6);
        commit(LARGE, 10e6); // locks 200
        vm.prank(dev);
        market.challenge(LARGE);
        vm.prank(arbiter);
        market.resolve(LARGE, true);
        eq(deposit(dev), before, "whole escrow back");
        eq(earnings(dev), 100e6 + BOND, "half the 200 slashed, and the bond");
        eq(market.treasuryBalance(), 100e6, "the other half");
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(staked, MIN_STAKE * 3 - 200e6, "200 slashed");
        eq(locked, 0, "nothing locked");
    }

    function test_aLostChallengeOnASmallJobSlashesTheFloor() public {
        open(SMALL, 10e6);
        commit(SMALL, 1e6); // 20 < the floor
        vm.prank(dev);
        market.challenge(SMALL);
        vm.prank(arbiter);
        market.resolve(SMALL, true);
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(staked, MIN_STAKE * 2, "the floor slashed");
        eq(locked, 0, "nothing locked");
        eq(earnings(dev), MIN_STAKE / 2 + BOND, "half the floor, and the bond");
    }

    /// Whatever the amount, floor and multiple: a commit locks max(floor, amount x multiple),
    /// a finalize unlocks it and a lost challenge slashes it, to the unit.
    function testFuzz_lockUnlockAndSlashAgree(
        uint64 amount,
        uint64 floor,
        uint8 multiple,
        bool atFault,
        uint16 slashShare
    ) public {
        amount = uint64(bound(amount, 0, 400e6));
        floor = uint64(bound(floor, 0, 1_000e6));
        slashShare = uint16(bound(slashShare, 0, 10_000));
        uint256 need = lockFor(amount, floor, multiple);
        fund(prov, 200_000e6, false);
        vm.prank(prov);
        market.stake(200_000e6); // 200,300 staked: over 400 x 255
        GpuMarket.Terms memory t = scaled(250, 0, slashShare);
        t.minStake = floor;
        t.stakeMultiple = multiple;
        vm.prank(admin);
        market.setTerms(t);
        open(LARGE, amount);
        commit(LARGE, amount);
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(locked, need, "locked");
        if (atFault) {
            vm.prank(dev);
            market.challenge(LARGE);
            vm.prank(arbiter);
            market.resolve(LARGE, true);
            (uint64 stakedAfter, uint64 lockedAfter) = stakeOf(prov);
            eq(staked - stakedAfter, need, "slashed exactly the lock");
            eq(lockedAfter, 0, "nothing left locked");
            eq(earnings(dev), need * slashShare / 10_000 + BOND, "the challenger's share");
        } else {
            vm.warp(block.timestamp + WINDOW);
            market.finalize(LARGE);
            (uint64 stakedAfter, uint64 lockedAfter) = stakeOf(prov);
            eq(stakedAfter, staked, "nothing slashed");
            eq(lockedAfter, 0, "unlocked exactly the lock");
        }
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
