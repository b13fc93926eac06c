// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GpuMarket} from "../src/GpuMarket.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Base} from "./Base.sol";

/// @notice What the gas-saving storage layout must not change: refunds and unlocked stake
/// credited by id are part of the deposit and the free stake the moment they are credited (an
/// open, a commit, a withdrawal or an unstake that needs them folds them in); the primary
/// coordinator kept in the config word loses its access with its role; a later terms change
/// never touches a running job; the cached terms fields keep their width; the terms word's
/// verify window (24 bits) and premium (16 bits) and the job word's flags above its state.
contract LayoutTest is Base {
    bytes32 constant JOB = keccak256("job");

    function _settled(bytes32 id, uint64 maxPayment, uint64 amount) internal {
        open(id, maxPayment);
        commit(id, amount);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(id);
    }

    function test_refundsArePartOfTheDepositAndFundTheNextOpen() public {
        uint64 start = deposit(dev); // 500 (half of what fund() minted)
        _settled(JOB, start, 100e6); // the whole deposit escrowed; 400 comes back as a refund
        eq(deposit(dev), start - 100e6, "the refund counts as deposit at once");
        // an order the wallet word alone cannot cover folds the refunds in
        open(keccak256("next"), start - 100e6);
        eq(deposit(dev), 0, "all of it escrowed again");
        vm.prank(dev);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.InsufficientBalance.selector, 0, 1));
        market.withdraw(1);
    }

    function test_aWithdrawalFoldsRefundsIn() public {
        uint64 start = deposit(dev);
        _settled(JOB, start, 100e6);
        uint256 wallet = usd.balanceOf(dev);
        vm.prank(dev);
        vm.expectRevert(
            abi.encodeWithSelector(GpuMarket.InsufficientBalance.selector, start - 100e6, start)
        );
        market.withdraw(start);
        vm.prank(dev);
        market.withdraw(start - 100e6);
        eq(usd.balanceOf(dev), wallet + start - 100e6, "every refund withdrawn");
        eq(deposit(dev), 0, "nothing left");
    }

    function test_unlockedStakeIsFreeForTheNextCommitAndForUnstaking() public {
        // the provider stakes 3 x the minimum: three results lock all of it
        for (uint256 i = 0; i < 3; ++i) {
            bytes32 id = keccak256(abi.encode("locked", i));
            open(id, 1e6);
            commit(id, 1e6);
        }
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(locked, staked, "all locked");
        bytes32 waiting = keccak256("waiting");
        open(waiting, 1e6);
        bytes32 result = keccak256("r");
        GpuMarket.Sig memory sig = signed(provKey, market.resultDigest(waiting, result, 1e6));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.StakeTooLow.selector, 0, MIN_STAKE));
        market.commitResult(waiting, result, 1e6, sig);

        vm.warp(block.timestamp + WINDOW);
        market.finalize(keccak256(abi.encode("locked", uint256(0))));
        (, locked) = stakeOf(prov);
        eq(locked, staked - MIN_STAKE, "unlocked at once in the view");
        commit(waiting, 1e6); // folds the unlocked stake in
        (, locked) = stakeOf(prov);
        eq(locked, staked, "locked again by the new result");

        market.finalize(keccak256(abi.encode("locked", uint256(1))));
        vm.prank(prov);
        market.requestUnstake(MIN_STAKE); // folds it in too
        (uint64 after_, uint64 lockedAfter) = stakeOf(prov);
        eq(after_, staked - MIN_STAKE, "unstaked");
        eq(lockedAfter, after_, "the rest still locked by two results");
    }

    function test_theRevokedPrimaryCoordinatorLosesAccess() public {
        address second = address(0xC00E);
        vm.startPrank(admin);
        market.grantRole(market.COORDINATOR_ROLE(), second);
        market.revokeRole(market.COORDINATOR_ROLE(), coordinator); // the primary one
        vm.stopPrank();
        GpuMarket.Order memory o = order(JOB, 1e6);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        bytes32 role = market.COORDINATOR_ROLE();
        vm.prank(coordinator);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, coordinator, role
            )
        );
        market.openJob(o, sig);
        vm.prank(second); // a coordinator through the role mapping
        market.openJob(o, sig);
        // the next coordinator granted becomes the primary one
        vm.prank(admin);
        market.grantRole(role, coordinator);
        commit(JOB, 1e6);
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Committed), "committed");
    }

    /// The config word caches minStake in 40 bits (and the protocol word in 56): a larger one
    /// is refused rather than cut.
    function test_termsOutsideTheCachedWidthsAreRefused() public {
        GpuMarket.Terms memory t = terms(250, 0, 0);
        t.minStake = uint64(1 << 40);
        vm.prank(admin);
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(t);
        t.minStake = uint64((1 << 40) - 1);
        vm.prank(admin);
        market.setTerms(t);
        eq(market.currentTerms().minStake, (1 << 40) - 1, "the largest that fits");
    }

    /// Every field of the terms word at its largest reads back whole, and the cached floor and
    /// multiple (config word for the commit, protocol word for the finalize) neither lose a bit
    /// nor spill into their neighbours: the primary coordinator, the terms index, the window,
    /// the treasury and burn balances.
    function test_theWidestTermsRoundTripAndTheirCachesStayInTheirBits() public {
        GpuMarket.Terms memory t = GpuMarket.Terms({
            feeBps: 1000,
            burnBps: 10_000,
            slashShareBps: 10_000,
            window: type(uint32).max - uint32(block.timestamp) - 1,
            minStake: uint64((1 << 40) - 1),
            challengeBond: type(uint64).max,
            stakeMultiple: type(uint8).max,
            verifyWindow: uint32((1 << 24) - 1),
            premiumBps: 10_000
        });
        vm.prank(admin);
        market.setTerms(t);
        GpuMarket.Terms memory back = market.currentTerms();
        ok(keccak256(abi.encode(back)) == keccak256(abi.encode(t)), "currentTerms reads back");
        (,,,,, uint64 bond, uint8 multiple, uint32 verifyWindow, uint16 premium) = market.terms(1);
        eq(bond, type(uint64).max, "bond");
        eq(multiple, 255, "multiple");
        eq(verifyWindow, (1 << 24) - 1, "verifyWindow, 24 bits");
        eq(premium, 10_000, "premiumBps");

        uint64 floor = uint64((1 << 40) - 1);
        fund(prov, floor * 2 + 1_000e6, false);
        vm.prank(prov);
        market.stake(floor * 2 + 1_000e6);
        open(JOB, 10e6); // the primary coordinator: its address still whole in the config word
        commit(JOB, 10e6); // 2,550 < the floor
        (, uint64 locked) = stakeOf(prov);
        eq(locked, floor, "the whole 40-bit floor locked");
        bytes32 big = keccak256("big");
        uint64 amount = 0x0101010102; // x 255 = 2^40 - 1 + 255: over the floor by 255
        usd.mint(dev, amount);
        vm.prank(dev);
        market.deposit(amount);
        open(big, amount);
        commit(big, amount);
        (, locked) = stakeOf(prov);
        eq(locked, uint256(floor) * 2 + 255, "the multiple, 255, whole");
        eq(windowEndOf(JOB), block.timestamp + t.window, "the window whole");
        vm.warp(windowEndOf(JOB));
        market.finalize(JOB); // through the protocol word's cache
        (, locked) = stakeOf(prov);
        eq(locked, uint256(floor) + 255, "the floor unlocked");
        eq(market.treasuryBalance(), 0, "a 10% fee, all burned: no treasury share");
        eq(market.burnBalance(), 1e6, "the fee burned, the cache not read into it");
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = big;
        eq(market.finalizeMany(ids), 1, "batched, through the cache too");
        (, locked) = stakeOf(prov);
        eq(locked, 0, "the multiple unlocked");
    }

    /// A job keeps the multiple and floor of the terms it was opened under: its commit locks
    /// them, and a single or batched finalize, or a ruling, releases or slashes exactly that,
    /// whatever the current terms say.
    function test_aJobOnEarlierTermsKeepsItsMultiple() public {
        vm.prank(admin);
        market.setTerms(scaled(250, 0, 5000)); // terms 1: floor 100, 20 x
        bytes32[3] memory ids = [keccak256("a"), keccak256("b"), keccak256("c")];
        for (uint256 i = 0; i < 3; ++i) open(ids[i], 10e6);
        GpuMarket.Terms memory later = scaled(250, 0, 5000);
        later.stakeMultiple = 2;
        later.minStake = 1e6;
        vm.prank(admin);
        market.setTerms(later); // terms 2: floor 1, 2 x
        (,,,,,, uint8 multiple,,) = market.terms(1);
        eq(multiple, MULTIPLE, "terms 1 keep theirs");
        for (uint256 i = 0; i < 3; ++i) commit(ids[i], 5e6); // 100 each under terms 1
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(locked, 300e6, "terms 1's 20 x, not terms 2's 2 x");
        vm.prank(dev);
        market.challenge(ids[2]);
        vm.prank(arbiter);
        market.resolve(ids[2], true);
        (uint64 stakedAfter,) = stakeOf(prov);
        eq(staked - stakedAfter, 100e6, "the ruling slashes terms 1's lock");
        vm.warp(block.timestamp + WINDOW);
        market.finalize(ids[0]);
        (, locked) = stakeOf(prov);
        eq(locked, 100e6, "finalize releases terms 1's lock");
        bytes32[] memory one = new bytes32[](1);
        one[0] = ids[1];
        market.finalizeMany(one);
        (, locked) = stakeOf(prov);
        eq(locked, 0, "and finalizeMany");
        // a job opened now gets terms 2
        bytes32 fresh = keccak256("fresh");
        open(fresh, 10e6);
        commit(fresh, 5e6);
        (, locked) = stakeOf(prov);
        eq(locked, 10e6, "terms 2's 2 x");
    }

    /// The extension flag sits above the state: every view and step still reads the state,
    /// the deadline moves and nothing else in the job word does.
    function test_anExtendedJobKeepsItsWordAndItsState() public {
        open(JOB, 10e6);
        commit(JOB, 6e6);
        (uint32 d, uint32 p, uint64 maxPayment, uint64 amount, uint32 end, uint16 index,) =
            market.jobs(JOB);
        extend(JOB, 1 days);
        (uint32 d2, uint32 p2, uint64 max2, uint64 amount2, uint32 end2, uint16 index2,
            GpuMarket.State s) = market.jobs(JOB);
        eq(uint8(s), uint8(GpuMarket.State.Committed), "still committed");
        eq(end2, uint256(end) + 1 days, "the window moved");
        ok(d2 == d && p2 == p && max2 == maxPayment && amount2 == amount && index2 == index,
           "the rest of the word kept");
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = JOB;
        vm.warp(end);
        eq(market.finalizeMany(ids), 0, "not ready at the old end");
        vm.warp(end2);
        eq(market.finalizeMany(ids), 1, "a committed job to finalizeMany once its window ends");
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Settled), "settled, not a garbled state");
        eq(earnings(prov), 6e6 - 150_000, "paid");
    }

    /// The verified flag (bit 249) sits above the state beside the extension flag (bit 248):
    /// `openVerified` sets it, and every later step (commit, extension, challenge, a ruling
    /// either way, finalize, finalizeMany, a re-run's payment) keeps it, while every view and
    /// step reads the state as before.
    function test_theVerifiedFlagStaysThroughEveryStep() public {
        uint256 verified = 1 << 249;
        uint256 extended = 1 << 248;
        usd.mint(address(this), 10e6);
        usd.approve(address(market), 10e6);
        market.fundPool(10e6);
        bytes32[5] memory ids = [keccak256("f"), keccak256("m"), keccak256("r"), keccak256("p"),
                                 keccak256("x")];
        fund(prov, MIN_STAKE * 2, false);
        vm.prank(prov);
        market.stake(MIN_STAKE * 2); // five results at once
        for (uint256 i = 0; i < 5; ++i) {
            openVerified(ids[i], 10e6);
            eq(jobWord(ids[i]) >> 240, (verified >> 240) | uint8(GpuMarket.State.Open),
               "open: the flag above the state");
            commit(ids[i], 6e6);
            eq(jobWord(ids[i]) >> 240, (verified >> 240) | uint8(GpuMarket.State.Committed),
               "the commit keeps it");
        }
        extend(ids[0], 1 hours);
        eq(jobWord(ids[0]) >> 240,
           ((verified | extended) >> 240) | uint8(GpuMarket.State.Committed), "both flags");
        vm.prank(dev);
        market.challenge(ids[2]);
        ok(jobWord(ids[2]) & verified != 0, "the challenge keeps it");
        vm.prank(verifier);
        market.challenge(ids[3]);
        address other = vm.addr(0xB3);
        fund(other, 10e6, true);
        GpuMarket.Sig memory sig = signed(0xB3, market.resultDigest(ids[3], keccak256("r"), 1e6));
        vm.prank(verifier);
        market.payRerun(ids[3], keccak256("r"), 1e6, sig);
        eq(uint8(state(ids[3])), uint8(GpuMarket.State.Disputed), "a payment changes no state");
        ok(jobWord(ids[3]) & verified != 0, "nor the flag");
        vm.prank(arbiter);
        market.resolve(ids[2], false);
        vm.prank(arbiter);
        market.resolve(ids[3], true);
        vm.warp(block.timestamp + WINDOW + 1 hours);
        market.finalize(ids[0]);
        bytes32[] memory many = new bytes32[](1);
        many[0] = ids[1];
        eq(market.finalizeMany(many), 1, "finalizeMany reads the state under the flag");
        eq(jobWord(ids[0]) >> 240,
           ((verified | extended) >> 240) | uint8(GpuMarket.State.Settled), "finalized: kept");
        eq(jobWord(ids[1]) >> 240, (verified >> 240) | uint8(GpuMarket.State.Settled), "batched");
        eq(jobWord(ids[2]) >> 240, (verified >> 240) | uint8(GpuMarket.State.Settled), "ruled for");
        eq(jobWord(ids[3]) >> 240, (verified >> 240) | uint8(GpuMarket.State.Refunded),
           "ruled against");
        for (uint256 i = 0; i < 4; ++i) {
            (,,,,,, GpuMarket.State s) = market.jobs(ids[i]);
            ok(s == GpuMarket.State.Settled || s == GpuMarket.State.Refunded, "the view's state");
        }
        // premiums: 0.6 x 3 settled jobs; the refunded one none; the slash share of the
        // verifier's challenge; the re-run
        eq(market.verificationPool(), 10e6 + 3 * 600_000 + MIN_STAKE / 2 - 1e6, "the pool");
        // the fifth is still committed and finalizes with its premium once its window ends
        market.finalize(ids[4]);
        eq(market.verificationPool(), 10e6 + 4 * 600_000 + MIN_STAKE / 2 - 1e6, "and its premium");
    }

    /// The terms word is full: the verify window in 24 bits (216-239) and the premium in the
    /// last 16 (240-255). Each at its largest with the other at zero reads back whole, and
    /// neither leaks into the other: the extension limit is exactly the verify window, the
    /// premium exactly premiumBps.
    function test_theVerifyWindowAndThePremiumKeepToTheirBits() public {
        GpuMarket.Terms memory t = terms(250, 0, 5000);
        t.verifyWindow = (1 << 24) - 1;
        t.premiumBps = 0;
        vm.prank(admin);
        market.setTerms(t);
        (,,,,,,, uint32 verifyWindow, uint16 premium) = market.terms(1);
        eq(verifyWindow, (1 << 24) - 1, "24 bits of window");
        eq(premium, 0, "no premium read into it");
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.prank(verifier);
        vm.expectRevert(
            abi.encodeWithSelector(GpuMarket.ExtensionTooLong.selector, 1 << 24, (1 << 24) - 1)
        );
        market.extendWindow(JOB, 1 << 24);
        extend(JOB, (1 << 24) - 1); // the whole window
        vm.warp(windowEndOf(JOB));
        market.finalize(JOB);
        eq(market.verificationPool(), 0, "a 0 premium: nothing");

        t.verifyWindow = 0;
        t.premiumBps = 10_000;
        vm.prank(admin);
        market.setTerms(t);
        (,,,,,,, verifyWindow, premium) = market.terms(2);
        eq(verifyWindow, 0, "no window read from the premium");
        eq(premium, 10_000, "16 bits of premium");
        bytes32 next = keccak256("next");
        openVerified(next, 20e6);
        commit(next, 6e6);
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.ExtensionTooLong.selector, 1, 0));
        market.extendWindow(next, 1);
        vm.warp(windowEndOf(next));
        market.finalize(next);
        eq(market.verificationPool(), 6e6, "100% of the amount");
    }

    function test_aJobOnEarlierTermsKeepsItsWindowStakeAndFee() public {
        open(JOB, 10e6); // terms 0: 2.5%, one-hour window, MIN_STAKE locked
        GpuMarket.Terms memory later = terms(1000, 0, 0);
        later.window = 2 hours;
        later.minStake = MIN_STAKE * 2;
        vm.prank(admin);
        market.setTerms(later);
        commit(JOB, 10e6);
        (, uint64 locked) = stakeOf(prov);
        eq(locked, MIN_STAKE, "terms 0's stake locked");
        (,,,, uint32 windowEnd,,) = market.jobs(JOB);
        eq(windowEnd, block.timestamp + WINDOW, "terms 0's window");
        vm.warp(windowEnd);
        market.finalize(JOB);
        eq(earnings(prov), 10e6 - 250_000, "terms 0's fee");
        (, locked) = stakeOf(prov);
        eq(locked, 0, "terms 0's stake unlocked");
    }
}
