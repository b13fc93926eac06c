// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {GpuMarket} from "../src/GpuMarket.sol";
import {Base, Vm} from "./Base.sol";

/// @dev Every job step from every state, and every custom error by its exact arguments: a
/// refused step names the job's state, so a caller (and the Python client, which decodes the
/// error) learns what to do; a refused step never changes the job.
contract TransitionsTest is Base {
    uint8 internal constant OPEN = 0;
    uint8 internal constant COMMIT = 1;
    uint8 internal constant CHALLENGE = 2;
    uint8 internal constant RESOLVE = 3;
    uint8 internal constant FINALIZE = 4;
    uint8 internal constant CANCEL = 5;
    uint8 internal constant EXPIRE = 6;
    uint8 internal constant EXTEND = 7;
    uint8 internal constant OPEN_VERIFIED = 8;
    uint8 internal constant PAY_RERUN = 9;
    uint8 internal constant ACTIONS = 10;

    uint256 internal jobs;

    /// A fresh job driven to `target` (None: an id never opened). `how` picks between the
    /// two ways into Settled (finalize, or a ruling for the provider) and Cancelled (cancel,
    /// or expiry).
    function _reach(GpuMarket.State target, bool how) internal returns (bytes32 id) {
        id = keccak256(abi.encode("transition", ++jobs));
        if (target == GpuMarket.State.None) return id;
        open(id, 10e6);
        if (target == GpuMarket.State.Cancelled) {
            if (how) {
                (,,,, uint32 deadline,,) = market.jobs(id);
                vm.warp(uint256(deadline) + 1);
                market.expire(id);
            } else {
                vm.prank(coordinator);
                market.cancel(id);
            }
        }
        if (target == GpuMarket.State.Open || target == GpuMarket.State.Cancelled) return id;
        commit(id, 6e6);
        if (target == GpuMarket.State.Committed) return id;
        if (target == GpuMarket.State.Settled && !how) {
            vm.warp(block.timestamp + WINDOW);
            market.finalize(id);
            return id;
        }
        vm.prank(dev);
        market.challenge(id);
        if (target == GpuMarket.State.Disputed) return id;
        vm.prank(arbiter);
        market.resolve(id, target == GpuMarket.State.Refunded);
    }

    /// Whether `action` is a step the job may take from `s` (given the right time).
    function _allowed(GpuMarket.State s, uint8 action) internal pure returns (bool) {
        if (s == GpuMarket.State.None) return action == OPEN || action == OPEN_VERIFIED;
        if (s == GpuMarket.State.Open) {
            return action == COMMIT || action == CANCEL || action == EXPIRE;
        }
        if (s == GpuMarket.State.Committed) {
            return action == CHALLENGE || action == FINALIZE || action == EXTEND
                || action == PAY_RERUN;
        }
        // a re-run is paid in any state after a commit
        if (s == GpuMarket.State.Disputed) return action == RESOLVE || action == PAY_RERUN;
        return s != GpuMarket.State.Cancelled && action == PAY_RERUN;
    }

    /// Takes `action` on the job; with `refusal` set, expects exactly that revert (set just
    /// before the market's call: any call in between, a digest included, would take it).
    function _act(bytes32 id, uint8 action, bytes memory refusal) internal {
        GpuMarket.Order memory o = order(id, 1e6);
        GpuMarket.Sig memory orderSig = signed(devKey, market.orderDigest(o));
        bytes32 result = keccak256("again");
        GpuMarket.Sig memory resultSig = signed(provKey, market.resultDigest(id, result, 1e6));
        if (action == OPEN || action == COMMIT || action == CANCEL || action == OPEN_VERIFIED) {
            vm.prank(coordinator);
        }
        if (action == CHALLENGE) vm.prank(dev);
        if (action == RESOLVE) vm.prank(arbiter);
        if (action == EXTEND || action == PAY_RERUN) vm.prank(verifier);
        if (refusal.length > 0) vm.expectRevert(refusal);
        if (action == OPEN) market.openJob(o, orderSig);
        else if (action == OPEN_VERIFIED) market.openVerified(o, orderSig);
        else if (action == PAY_RERUN) market.payRerun(id, result, 1e6, resultSig);
        else if (action == COMMIT) market.commitResult(id, result, 1e6, resultSig);
        else if (action == CHALLENGE) market.challenge(id);
        else if (action == RESOLVE) market.resolve(id, true);
        else if (action == FINALIZE) market.finalize(id);
        else if (action == CANCEL) market.cancel(id);
        else if (action == EXTEND) market.extendWindow(id, 1 hours);
        else market.expire(id);
    }

    /// Each step a state does not allow reverts with WrongState(job, state), whatever the
    /// time, and leaves the job, the deposit and the stake as they were.
    function _refusesAllButItsSteps(GpuMarket.State s, bool how) internal {
        bytes32 id = _reach(s, how);
        // inside every deadline and window, then past them all: only the state decides
        for (uint256 pass = 0; pass < 2; ++pass) {
            if (pass == 1) vm.warp(block.timestamp + 2 days);
            _refusesAllButItsSteps(id, s);
        }
        bytes32[] memory ids = new bytes32[](1);
        ids[0] = id;
        if (!_allowed(s, FINALIZE)) eq(market.finalizeMany(ids), 0, "finalizeMany skips it");
    }

    function _refusesAllButItsSteps(bytes32 id, GpuMarket.State s) internal {
        for (uint8 action = 0; action < ACTIONS; ++action) {
            if (_allowed(s, action)) continue;
            uint64 depositBefore = deposit(dev);
            (uint64 stakeBefore, uint64 lockedBefore) = stakeOf(prov);
            _act(id, action, abi.encodeWithSelector(GpuMarket.WrongState.selector, id, s));
            eq(uint8(state(id)), uint8(s), "state unchanged");
            eq(deposit(dev), depositBefore, "deposit unchanged");
            (uint64 stakeAfter, uint64 lockedAfter) = stakeOf(prov);
            eq(stakeAfter, stakeBefore, "stake unchanged");
            eq(lockedAfter, lockedBefore, "lock unchanged");
        }
    }

    function test_aJobNeverOpenedTakesOnlyAnOpen() public {
        _refusesAllButItsSteps(GpuMarket.State.None, false);
    }

    function test_anOpenJobTakesOnlyACommitACancelOrAnExpiry() public {
        _refusesAllButItsSteps(GpuMarket.State.Open, false);
    }

    function test_aCommittedJobTakesOnlyAChallengeAFinalizeOrAnExtension() public {
        _refusesAllButItsSteps(GpuMarket.State.Committed, false);
    }

    function test_aDisputedJobTakesOnlyARuling() public {
        _refusesAllButItsSteps(GpuMarket.State.Disputed, false);
    }

    function test_terminalStatesTakeNothing() public {
        _refusesAllButItsSteps(GpuMarket.State.Settled, false); // finalized
        _refusesAllButItsSteps(GpuMarket.State.Settled, true); // ruled for the provider
        _refusesAllButItsSteps(GpuMarket.State.Refunded, false);
        _refusesAllButItsSteps(GpuMarket.State.Cancelled, false); // cancelled
        _refusesAllButItsSteps(GpuMarket.State.Cancelled, true); // expired
    }

    function _emitted(bytes32 topic) internal returns (bool found) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(market) && logs[i].topics[0] == topic) found = true;
        }
    }

    /// Each allowed step moves the job where the lifecycle says and emits its event.
    function test_everyTransitionMovesTheJobAndEmitsItsEvent() public {
        vm.recordLogs();
        bytes32 id = _reach(GpuMarket.State.None, false);
        _act(id, OPEN_VERIFIED, "");
        ok(_emitted(GpuMarket.JobOpened.selector), "JobOpened by openVerified");
        eq(uint8(state(id)), uint8(GpuMarket.State.Open), "None -> Open (verified)");
        id = _reach(GpuMarket.State.None, false);
        _act(id, OPEN, "");
        ok(_emitted(GpuMarket.JobOpened.selector), "JobOpened");
        eq(uint8(state(id)), uint8(GpuMarket.State.Open), "None -> Open");
        commit(id, 1e6);
        ok(_emitted(GpuMarket.ResultCommitted.selector), "ResultCommitted");
        eq(uint8(state(id)), uint8(GpuMarket.State.Committed), "Open -> Committed");
        _act(id, EXTEND, "");
        ok(_emitted(GpuMarket.WindowExtended.selector), "WindowExtended");
        eq(uint8(state(id)), uint8(GpuMarket.State.Committed), "Committed, window extended");
        _act(id, CHALLENGE, "");
        ok(_emitted(GpuMarket.Challenged.selector), "Challenged");
        eq(uint8(state(id)), uint8(GpuMarket.State.Disputed), "Committed -> Disputed");
        _act(id, RESOLVE, "");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(logs.length, 2, "Resolved and Refunded");
        ok(logs[0].topics[0] == GpuMarket.Resolved.selector, "Resolved");
        ok(logs[1].topics[0] == GpuMarket.Refunded.selector, "Refunded");
        eq(uint8(state(id)), uint8(GpuMarket.State.Refunded), "Disputed -> Refunded");

        id = _reach(GpuMarket.State.Disputed, false);
        vm.getRecordedLogs();
        vm.prank(arbiter);
        market.resolve(id, false);
        logs = vm.getRecordedLogs();
        ok(logs[0].topics[0] == GpuMarket.Resolved.selector, "Resolved");
        ok(logs[1].topics[0] == GpuMarket.Settled.selector, "Settled");
        eq(uint8(state(id)), uint8(GpuMarket.State.Settled), "Disputed -> Settled");

        id = _reach(GpuMarket.State.Committed, false);
        vm.warp(block.timestamp + WINDOW);
        vm.getRecordedLogs();
        _act(id, FINALIZE, "");
        ok(_emitted(GpuMarket.Settled.selector), "Settled");
        eq(uint8(state(id)), uint8(GpuMarket.State.Settled), "Committed -> Settled");

        id = _reach(GpuMarket.State.Open, false);
        vm.getRecordedLogs();
        _act(id, CANCEL, "");
        ok(_emitted(GpuMarket.Cancelled.selector), "Cancelled");
        eq(uint8(state(id)), uint8(GpuMarket.State.Cancelled), "Open -> Cancelled");

        id = _reach(GpuMarket.State.Open, false);
        vm.warp(block.timestamp + 1 days + 1);
        vm.getRecordedLogs();
        _act(id, EXPIRE, "");
        ok(_emitted(GpuMarket.Cancelled.selector), "Cancelled by expiry");
        eq(uint8(state(id)), uint8(GpuMarket.State.Cancelled), "Open -> Cancelled (expired)");
    }

    /// The account and protocol steps emit theirs too.
    function test_everyAccountAndProtocolStepEmitsItsEvent() public {
        vm.recordLogs();
        vm.prank(dev);
        market.deposit(1e6);
        ok(_emitted(GpuMarket.Deposited.selector), "Deposited");
        vm.prank(dev);
        market.withdraw(1e6);
        ok(_emitted(GpuMarket.Withdrawn.selector), "Withdrawn");
        vm.prank(prov);
        market.stake(1e6);
        ok(_emitted(GpuMarket.Staked.selector), "Staked");
        vm.prank(prov);
        market.requestUnstake(1e6);
        ok(_emitted(GpuMarket.UnstakeRequested.selector), "UnstakeRequested");
        vm.warp(block.timestamp + 7 days);
        vm.prank(prov);
        market.withdrawStake();
        ok(_emitted(GpuMarket.StakeWithdrawn.selector), "StakeWithdrawn");
        _reach(GpuMarket.State.Settled, false);
        vm.prank(prov);
        market.withdrawEarnings();
        ok(_emitted(GpuMarket.EarningsWithdrawn.selector), "EarningsWithdrawn");
        market.withdrawTreasury();
        ok(_emitted(GpuMarket.TreasuryWithdrawn.selector), "TreasuryWithdrawn");
        market.burn();
        ok(_emitted(GpuMarket.Burned.selector), "Burned");
        vm.prank(dev);
        market.fundPool(1e6);
        ok(_emitted(GpuMarket.PoolFunded.selector), "PoolFunded");
        vm.startPrank(admin);
        market.setTerms(terms(100, 0, 0));
        ok(_emitted(GpuMarket.TermsChanged.selector), "TermsChanged");
        market.setTreasury(address(0x7EA6));
        ok(_emitted(GpuMarket.TreasuryChanged.selector), "TreasuryChanged");
        market.setUnstakeDelay(1 days);
        ok(_emitted(GpuMarket.UnstakeDelayChanged.selector), "UnstakeDelayChanged");
        market.pause();
        ok(_emitted(GpuMarket.Paused.selector), "Paused");
        market.unpause();
        ok(_emitted(GpuMarket.Unpaused.selector), "Unpaused");
        vm.stopPrank();
    }

    function _unauthorized(address who, bytes32 role) internal {
        vm.prank(who);
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, who, role)
        );
    }

    /// Each restricted function names the caller and the role it lacks; holding another role
    /// does not help (the coordinator cannot rule or change terms, the arbiter cannot relay).
    function test_eachRoleGuardsItsFunctions() public {
        bytes32 coord = market.COORDINATOR_ROLE();
        bytes32 adminRole = market.DEFAULT_ADMIN_ROLE();
        bytes32 id = _reach(GpuMarket.State.None, false);
        GpuMarket.Order memory o = order(id, 1e6);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        GpuMarket.Order[] memory orders = new GpuMarket.Order[](1);
        GpuMarket.Sig[] memory sigs = new GpuMarket.Sig[](1);
        orders[0] = o;
        sigs[0] = sig;
        bytes32[] memory ids = new bytes32[](1);
        bytes32[] memory results = new bytes32[](1);
        uint64[] memory amounts = new uint64[](1);
        ids[0] = id;

        _unauthorized(arbiter, coord);
        market.openJob(o, sig);
        _unauthorized(verifier, coord); // a verifier samples jobs, the coordinator opens them
        market.openVerified(o, sig);
        _unauthorized(dev, coord);
        market.openVerified(o, sig);
        _unauthorized(dev, coord);
        market.openMany(orders, sigs);
        _unauthorized(prov, coord);
        market.commitResult(id, bytes32(0), 0, sig);
        _unauthorized(prov, coord);
        market.commitMany(ids, results, amounts, sigs);
        _unauthorized(dev, coord);
        market.cancel(id);
        _unauthorized(coordinator, market.ARBITER_ROLE());
        market.resolve(id, true);
        _unauthorized(coordinator, market.VERIFIER_ROLE());
        market.extendWindow(id, 1);
        _unauthorized(dev, market.VERIFIER_ROLE()); // the developer may challenge, not extend
        market.extendWindow(id, 1);
        _unauthorized(arbiter, market.VERIFIER_ROLE());
        market.extendWindow(id, 1);
        _unauthorized(coordinator, market.VERIFIER_ROLE()); // only a verifier pays re-runs
        market.payRerun(id, bytes32(0), 0, sig);
        _unauthorized(arbiter, market.VERIFIER_ROLE());
        market.payRerun(id, bytes32(0), 0, sig);
        _unauthorized(prov, market.VERIFIER_ROLE());
        market.payRerun(id, bytes32(0), 0, sig);
        _unauthorized(coordinator, market.PAUSER_ROLE());
        market.pause();
        _unauthorized(coordinator, market.PAUSER_ROLE());
        market.unpause();
        _unauthorized(coordinator, adminRole);
        market.setTerms(terms(0, 0, 0));
        _unauthorized(arbiter, adminRole);
        market.setTreasury(arbiter);
        _unauthorized(coordinator, adminRole);
        market.setUnstakeDelay(0);
        _unauthorized(coordinator, adminRole);
        market.grantRole(coord, dev);
    }

    /// A coordinator that changes a signed order (here: raises its maximum) recovers another
    /// signer, which has no deposit: the order is refused and nothing moves.
    function test_aChangedOrderIsNotTheDevelopersOrder() public {
        bytes32 id = _reach(GpuMarket.State.None, false);
        GpuMarket.Order memory o = order(id, 1e6);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(devKey, market.orderDigest(o));
        GpuMarket.Sig memory sig = GpuMarket.Sig({r: r, vs: bytes32(uint256(s) | (uint256(v - 27) << 255))});
        o.maxPayment = 2e6;
        address recovered = ecrecover(market.orderDigest(o), v, r, s);
        ok(recovered != dev, "another signer");
        uint64 before = deposit(dev);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.BadSignature.selector, recovered));
        market.openJob(o, sig);
        eq(deposit(dev), before, "nothing escrowed");
    }

    /// An order is good up to and including its deadline second; a job may be expired only
    /// after its deadline second.
    function test_orderAndExpiryDeadlinesToTheSecond() public {
        bytes32 id = _reach(GpuMarket.State.None, false);
        GpuMarket.Order memory o = order(id, 1e6);
        o.deadline = uint64(block.timestamp + 100);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.warp(o.deadline + 1);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.OrderExpired.selector, o.deadline, o.deadline + 1));
        market.openJob(o, sig);
        vm.warp(o.deadline);
        vm.prank(coordinator);
        market.openJob(o, sig); // at the deadline second: still good
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.NotExpired.selector, o.deadline, o.deadline));
        market.expire(id);
        uint64 before = deposit(dev);
        vm.warp(o.deadline + 1);
        market.expire(id);
        eq(deposit(dev), before + 1e6, "expiry refunds the escrow");
    }

    /// Unstaked tokens wait exactly the delay; withdrawing twice finds nothing.
    function test_unstakeDelayToTheSecond() public {
        vm.prank(prov);
        market.requestUnstake(MIN_STAKE);
        (, uint64 readyAt) = market.unstaking(market.accountId(prov));
        vm.warp(readyAt - 1);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.UnstakeNotReady.selector, readyAt, readyAt - 1));
        market.withdrawStake();
        vm.warp(readyAt);
        vm.prank(prov);
        market.withdrawStake();
        vm.prank(prov);
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.withdrawStake();
    }

    /// Amounts over what an account holds are refused with what it holds and what was asked.
    function test_insufficientBalancesSayHowMuchThereIs() public {
        uint64 has = deposit(dev);
        bytes32 id = _reach(GpuMarket.State.None, false);
        GpuMarket.Order memory o = order(id, has + 1);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.InsufficientBalance.selector, has, has + 1));
        market.openJob(o, sig);
        vm.prank(dev);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.InsufficientBalance.selector, has, has + 1));
        market.withdraw(has + 1);

        _reach(GpuMarket.State.Committed, false); // locks MIN_STAKE of the provider's 3
        uint64 free = MIN_STAKE * 2;
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.InsufficientBalance.selector, free, free + 1));
        market.requestUnstake(free + 1);
        vm.prank(prov);
        market.requestUnstake(free); // all of the free stake, none of the locked
    }

    /// Someone who never deposited or staked is told so, not handed a zero balance.
    function test_anUnknownAccountIsNamed() public {
        address stranger = address(0x57A);
        bytes memory unknown = abi.encodeWithSelector(GpuMarket.UnknownAccount.selector, stranger);
        vm.startPrank(stranger);
        vm.expectRevert(unknown);
        market.withdraw(1);
        vm.expectRevert(unknown);
        market.withdrawEarnings();
        vm.expectRevert(unknown);
        market.requestUnstake(1);
        vm.expectRevert(unknown);
        market.withdrawStake();
        vm.stopPrank();
    }

    /// Moving nothing is refused rather than emitting an empty event.
    function test_zeroAmountsAreRefused() public {
        vm.startPrank(dev);
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.deposit(0);
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.stake(0);
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.withdrawEarnings(); // a developer's account, no earnings
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.withdrawStake(); // nothing requested
        vm.stopPrank();
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.withdrawTreasury();
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.burn();
    }

    /// Every share is capped: the fee at 10%, the burn, slash and premium shares at 100%;
    /// the verify window fits its 24 bits.
    function test_termsOutOfRangeAreRefused() public {
        vm.startPrank(admin);
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(terms(1001, 0, 0));
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(terms(250, 10_001, 0));
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(terms(250, 0, 10_001));
        GpuMarket.Terms memory t = terms(250, 0, 0);
        t.premiumBps = 10_001; // the premium: at most 100% of the amount
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(t);
        t.premiumBps = 0;
        t.verifyWindow = 1 << 24; // the verify window: 24 bits, about 194 days
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(t);
        t = terms(1000, 10_000, 10_000); // every cap itself is allowed
        t.premiumBps = 10_000;
        t.verifyWindow = (1 << 24) - 1;
        market.setTerms(t);
        vm.stopPrank();
        eq(market.currentTerms().feeBps, 1000, "the largest fee");
        eq(market.currentTerms().premiumBps, 10_000, "the largest premium");
        eq(market.currentTerms().verifyWindow, (1 << 24) - 1, "the longest verify window");
    }

    /// A verifier (not the developer) challenges without a bond; a ruling against the provider
    /// pays the slash share to the verification pool, not to the verifier.
    function test_aVerifierChallengesWithoutABond() public {
        bytes32 id = _reach(GpuMarket.State.Committed, false);
        vm.prank(verifier); // no tokens, no approval: nothing to take
        market.challenge(id);
        (uint32 challenger, uint64 bond) = market.disputes(id);
        eq(challenger, 0, "a verifier's challenge: no challenger account");
        eq(bond, 0, "no bond");
        vm.prank(arbiter);
        market.resolve(id, true);
        (, uint64 earned,,) = market.balances(market.accountId(verifier));
        eq(earned, 0, "the verifier earns nothing");
        eq(market.verificationPool(), MIN_STAKE / 2, "half the slash to the pool");
        eq(market.treasuryBalance(), MIN_STAKE / 2, "the rest to the treasury");
    }

    /// A verifier extends a committed job's open window once, by 1 s up to the terms'
    /// verifyWindow; each refusal names why, and a refusal moves nothing.
    function test_extendWindowRefusalsNameWhy() public {
        bytes32 id = _reach(GpuMarket.State.Committed, false);
        uint32 end = windowEndOf(id);
        vm.startPrank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.ZeroAmount.selector));
        market.extendWindow(id, 0);
        vm.expectRevert(
            abi.encodeWithSelector(GpuMarket.ExtensionTooLong.selector, VERIFY_WINDOW + 1, VERIFY_WINDOW)
        );
        market.extendWindow(id, VERIFY_WINDOW + 1);
        eq(windowEndOf(id), end, "refusals move nothing");
        vm.warp(end);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WindowClosed.selector, end, end));
        market.extendWindow(id, 1); // at the end the window is closed: too late
        vm.warp(end - 1);
        market.extendWindow(id, VERIFY_WINDOW); // the most, one second before the end
        eq(windowEndOf(id), uint256(end) + VERIFY_WINDOW, "moved by the whole verifyWindow");
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.AlreadyExtended.selector, id));
        market.extendWindow(id, 1); // once per job
        vm.stopPrank();
        eq(windowEndOf(id), uint256(end) + VERIFY_WINDOW, "the second refused");

        // terms with no verifyWindow allow no extension
        GpuMarket.Terms memory none = terms(250, 0, 5000);
        none.verifyWindow = 0;
        vm.prank(admin);
        market.setTerms(none);
        bytes32 other = _reach(GpuMarket.State.Committed, false);
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.ExtensionTooLong.selector, 1, 0));
        market.extendWindow(other, 1);
    }

    /// Inside the extended window the developer and a verifier may still challenge; a
    /// finalize waits for the new end, to the second.
    function test_anExtendedWindowTakesChallengesAndHoldsFinalize() public {
        bytes32 id = _reach(GpuMarket.State.Committed, false);
        uint32 end = windowEndOf(id);
        vm.recordLogs();
        extend(id, 1 days);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(logs.length, 1, "one event");
        ok(logs[0].topics[0] == GpuMarket.WindowExtended.selector, "WindowExtended");
        ok(logs[0].topics[1] == id, "names the job");
        uint256 newEnd = uint256(end) + 1 days;
        eq(abi.decode(logs[0].data, (uint256)), newEnd, "and the new end");
        vm.warp(newEnd - 1);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WindowOpen.selector, newEnd, newEnd - 1));
        market.finalize(id);
        vm.prank(dev);
        market.challenge(id); // past the old end, inside the new one
        eq(uint8(state(id)), uint8(GpuMarket.State.Disputed), "challenged in the extension");

        bytes32 settles = _reach(GpuMarket.State.Committed, false);
        end = windowEndOf(settles);
        extend(settles, 2 hours);
        newEnd = uint256(end) + 2 hours;
        vm.warp(newEnd);
        vm.prank(dev);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WindowClosed.selector, newEnd, newEnd));
        market.challenge(settles);
        market.finalize(settles); // at the new end
        eq(uint8(state(settles)), uint8(GpuMarket.State.Settled), "settled at the new end");

        // the verifier that extended re-runs the job and challenges itself, without a bond
        bytes32 rerun = _reach(GpuMarket.State.Committed, false);
        end = windowEndOf(rerun);
        extend(rerun, 1 days);
        vm.warp(uint256(end) + 12 hours);
        vm.prank(verifier);
        market.challenge(rerun);
        vm.prank(arbiter);
        market.resolve(rerun, true);
        eq(uint8(state(rerun)), uint8(GpuMarket.State.Refunded), "the re-run's verdict holds");
    }

    /// Pausing stops new jobs only: running jobs still commit, settle and cancel.
    function test_runningJobsFinishWhilePaused() public {
        bytes32 toSettle = _reach(GpuMarket.State.Open, false);
        bytes32 toCancel = _reach(GpuMarket.State.Open, false);
        vm.prank(admin);
        market.pause();
        commit(toSettle, 1e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(toSettle);
        eq(uint8(state(toSettle)), uint8(GpuMarket.State.Settled), "settled while paused");
        vm.prank(coordinator);
        market.cancel(toCancel);
        eq(uint8(state(toCancel)), uint8(GpuMarket.State.Cancelled), "cancelled while paused");
    }
}
