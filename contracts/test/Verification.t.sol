// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {GpuMarket} from "../src/GpuMarket.sol";
import {Base, Vm} from "./Base.sol";

/// @notice Verification by re-execution, on-chain: a sampled job opened with `openVerified`
/// pays the premium (`premiumBps` of its amount, at most what the escrow holds beyond it) into
/// the verification pool when it settles, and nothing when its provider is ruled at fault; the
/// pool takes `fundPool` top-ups and the slash share of a verifier's won challenge (a verifier
/// challenges without a bond); a verifier pays a re-runner's signed claim from the pool, once
/// per job and re-runner, never to the job's own provider, never over the job's maxPayment.
contract VerificationTest is Base {
    bytes32 internal constant JOB = keccak256("sampled");
    bytes32 internal constant PLAIN = keccak256("plain");
    bytes32 internal constant RESULT = keccak256("the re-run's outputs");
    uint256 internal constant VERIFIED_FLAG = 1 << 249;
    uint256 internal constant RUNNER_KEY = 0xB3;
    address internal runner;

    function setUp() public override {
        super.setUp();
        runner = vm.addr(RUNNER_KEY);
        fund(runner, 1_000e6, false);
        vm.prank(runner);
        market.stake(MIN_STAKE); // another provider of the market: the one that re-runs
    }

    function _fundPool(uint64 amount) internal {
        usd.mint(address(this), amount);
        usd.approve(address(market), amount);
        market.fundPool(amount);
    }

    function _pay(bytes32 id, uint256 key, uint64 amount) internal {
        GpuMarket.Sig memory sig = signed(key, market.resultDigest(id, RESULT, amount));
        vm.prank(verifier);
        market.payRerun(id, RESULT, amount, sig);
    }

    /// The market's event `topic` among the recorded logs (reverts when there is none).
    function _log(Vm.Log[] memory logs, bytes32 topic) internal view returns (Vm.Log memory) {
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(market) && logs[i].topics[0] == topic) return logs[i];
        }
        revert("no such event");
    }

    function _count(Vm.Log[] memory logs, bytes32 topic) internal pure returns (uint256 n) {
        for (uint256 i = 0; i < logs.length; ++i) if (logs[i].topics[0] == topic) ++n;
    }

    function _settledRefund(Vm.Log[] memory logs) internal view returns (uint256 refund) {
        (,,, refund) = abi.decode(_log(logs, GpuMarket.Settled.selector).data,
                                  (uint256, uint256, uint256, uint256));
    }

    // ------------------------------------------------------------ openVerified

    /// The same escrow, state and event as a plain open; only the flag above the state differs.
    function test_openVerifiedMarksTheJobAndOnlyIt() public {
        uint64 before = deposit(dev);
        vm.recordLogs();
        openVerified(JOB, 10e6);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(logs.length, 1, "one event");
        ok(logs[0].topics[0] == GpuMarket.JobOpened.selector && logs[0].topics[1] == JOB,
           "JobOpened, as a plain open");
        open(PLAIN, 10e6);
        eq(deposit(dev), before - 20e6, "both escrowed alike");
        ok(jobWord(JOB) & VERIFIED_FLAG != 0, "the verified flag is set");
        ok(jobWord(PLAIN) & VERIFIED_FLAG == 0, "a plain open leaves it clear");
        eq(jobWord(JOB) ^ VERIFIED_FLAG, jobWord(PLAIN), "the rest of the word as a plain job's");
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Open), "open");
        // openMany opens plain jobs
        GpuMarket.Order[] memory orders = new GpuMarket.Order[](1);
        GpuMarket.Sig[] memory sigs = new GpuMarket.Sig[](1);
        orders[0] = order(keccak256("batched"), 1e6);
        sigs[0] = signed(devKey, market.orderDigest(orders[0]));
        vm.prank(coordinator);
        market.openMany(orders, sigs);
        ok(jobWord(keccak256("batched")) & VERIFIED_FLAG == 0, "openMany: plain");
    }

    /// openVerified is the coordinator's and checks an order exactly as openJob does.
    function test_openVerifiedChecksLikeOpenJob() public {
        GpuMarket.Order memory o = order(JOB, 10e6);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        bytes32 role = market.COORDINATOR_ROLE();
        address[3] memory others = [dev, verifier, arbiter];
        for (uint256 i = 0; i < 3; ++i) {
            vm.prank(others[i]);
            vm.expectRevert(abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, others[i], role));
            market.openVerified(o, sig);
        }
        GpuMarket.Sig memory stranger = signed(0x5EC, market.orderDigest(o));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.BadSignature.selector, vm.addr(0x5EC)));
        market.openVerified(o, stranger);
        uint64 has = deposit(dev);
        GpuMarket.Order memory tooMuch = order(JOB, has + 1);
        GpuMarket.Sig memory tooMuchSig = signed(devKey, market.orderDigest(tooMuch));
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.InsufficientBalance.selector, has, has + 1));
        market.openVerified(tooMuch, tooMuchSig);
        vm.prank(admin);
        market.pause();
        vm.prank(coordinator);
        vm.expectRevert(GpuMarket.EnforcedPause.selector);
        market.openVerified(o, sig);
        vm.prank(admin);
        market.unpause();
        vm.prank(coordinator);
        market.openVerified(o, sig);
        vm.prank(coordinator); // once: the job exists
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WrongState.selector, JOB, GpuMarket.State.Open));
        market.openVerified(o, sig);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WrongState.selector, JOB, GpuMarket.State.Open));
        market.openJob(o, sig);
        GpuMarket.Order memory late = order(PLAIN, 1e6);
        late.deadline = uint64(block.timestamp);
        GpuMarket.Sig memory lateSig = signed(devKey, market.orderDigest(late));
        vm.warp(block.timestamp + 1);
        vm.prank(coordinator);
        vm.expectRevert(abi.encodeWithSelector(
            GpuMarket.OrderExpired.selector, late.deadline, block.timestamp));
        market.openVerified(late, lateSig);
    }

    // ------------------------------------------------------------ the premium

    /// maxPayment 10, amount 6: fee 0.15 (0.03 burned), premium 10% of 6 = 0.6 to the pool,
    /// the developer gets 4 - 0.6 back, and Settled says 3.4.
    function test_aVerifiedJobsFinalizePaysThePremiumIntoThePool() public {
        uint64 before = deposit(dev);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.warp(block.timestamp + WINDOW);
        vm.recordLogs();
        market.finalize(JOB);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        Vm.Log memory paid = _log(logs, GpuMarket.PremiumPaid.selector);
        ok(paid.topics[1] == JOB, "PremiumPaid names the job");
        eq(abi.decode(paid.data, (uint256)), 600_000, "and the premium");
        eq(_settledRefund(logs), 3_400_000, "Settled's refund: what was credited");
        eq(market.verificationPool(), 600_000, "the premium in the pool");
        eq(deposit(dev), before - 6e6 - 600_000, "the developer paid the amount and the premium");
        eq(earnings(prov), 5_850_000, "the provider paid as for a plain job");
        eq(market.treasuryBalance(), 120_000, "treasury");
        eq(market.burnBalance(), 30_000, "burn");

        // a plain job pays none
        open(PLAIN, 10e6);
        commit(PLAIN, 6e6);
        vm.warp(block.timestamp + WINDOW);
        vm.recordLogs();
        market.finalize(PLAIN);
        logs = vm.getRecordedLogs();
        eq(_count(logs, GpuMarket.PremiumPaid.selector), 0, "no PremiumPaid");
        eq(_settledRefund(logs), 4e6, "the whole rest back");
        eq(market.verificationPool(), 600_000, "the pool unchanged");
    }

    /// finalizeMany pays each verified job's premium (once, through the batch) and none for
    /// the plain ones.
    function test_finalizeManyPaysEachVerifiedJobsPremium() public {
        uint64 before = deposit(dev);
        bytes32[] memory ids = new bytes32[](3);
        for (uint256 i = 0; i < 3; ++i) ids[i] = keccak256(abi.encode("many", i));
        openVerified(ids[0], 10e6);
        open(ids[1], 10e6);
        openVerified(ids[2], 8e6);
        commit(ids[0], 6e6); // premium 0.6
        commit(ids[1], 6e6); // none
        commit(ids[2], 2e6); // premium 0.2
        vm.warp(block.timestamp + WINDOW);
        vm.recordLogs();
        eq(market.finalizeMany(ids), 3, "all three");
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(_count(logs, GpuMarket.PremiumPaid.selector), 2, "a PremiumPaid per verified job");
        eq(market.verificationPool(), 800_000, "0.6 + 0.2");
        eq(deposit(dev), before - 14e6 - 800_000, "the amounts and the premiums");
        eq(market.finalizeMany(ids), 0, "never twice");
        eq(market.verificationPool(), 800_000, "premiums paid once");
    }

    /// A ruling for the provider settles the job: the verified job pays its premium, the
    /// provider gets the developer's bond.
    function test_aRulingForTheProviderPaysThePremium() public {
        uint64 before = deposit(dev);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.prank(dev);
        market.challenge(JOB);
        vm.recordLogs();
        vm.prank(arbiter);
        market.resolve(JOB, false);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(abi.decode(_log(logs, GpuMarket.PremiumPaid.selector).data, (uint256)), 600_000,
           "PremiumPaid");
        eq(_settledRefund(logs), 3_400_000, "Settled's refund");
        eq(market.verificationPool(), 600_000, "the premium");
        eq(deposit(dev), before - 6e6 - 600_000, "the developer's refund less the premium");
        eq(earnings(prov), 5_850_000 + BOND, "paid, and the bond");
    }

    /// A provider ruled at fault: the developer gets its whole maxPayment back, premium none.
    function test_aProviderAtFaultPaysNoPremium() public {
        uint64 before = deposit(dev);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.prank(dev);
        market.challenge(JOB);
        vm.recordLogs();
        vm.prank(arbiter);
        market.resolve(JOB, true);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(_count(logs, GpuMarket.PremiumPaid.selector), 0, "no PremiumPaid");
        eq(abi.decode(_log(logs, GpuMarket.Refunded.selector).data, (uint256)), 10e6,
           "Refunded: the whole maxPayment");
        eq(deposit(dev), before, "all of it back");
        eq(market.verificationPool(), 0, "nothing to the pool from a developer's challenge");
        eq(earnings(dev), MIN_STAKE / 2 + BOND, "the developer's share of the slash, its bond");
    }

    /// The premium never takes more than the escrow holds beyond the amount, and rounds down.
    function test_thePremiumIsCappedByTheEscrowsRemainder() public {
        uint64 before = deposit(dev);
        bytes32 full = keccak256("claims all of it");
        openVerified(full, 10e6);
        commit(full, 10e6); // 10% of 10 = 1, but nothing is left beyond the amount
        bytes32 half = keccak256("half a token left");
        openVerified(half, 10_500_000);
        commit(half, 10e6); // 1 wanted, 0.5 left
        bytes32 dust = keccak256("dust");
        openVerified(dust, 10e6);
        commit(dust, 9_999); // 999.9 micros: 999
        vm.warp(block.timestamp + WINDOW);
        vm.recordLogs();
        market.finalize(full);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(abi.decode(_log(logs, GpuMarket.PremiumPaid.selector).data, (uint256)), 0,
           "no premium: PremiumPaid(0)");
        eq(_settledRefund(logs), 0, "no refund");
        vm.recordLogs();
        market.finalize(half);
        logs = vm.getRecordedLogs();
        eq(abi.decode(_log(logs, GpuMarket.PremiumPaid.selector).data, (uint256)), 500_000,
           "the half token left");
        eq(_settledRefund(logs), 0, "nothing left to refund");
        market.finalize(dust);
        eq(market.verificationPool(), 500_000 + 999, "capped, and rounded down");
        eq(deposit(dev), before - 20e6 - 9_999 - 500_000 - 999, "the developer paid exactly that");
    }

    /// A redundant job opened with 2 copies: maxPayment 30, amount 6, premium 10% of 6 plus
    /// 6 per copy = 12.6 to the pool (what pays its two replicas), 11.4 back. The copies
    /// survive the commit and the window's extension; a ruling for the provider pays the same.
    function test_aRedundantJobsPremiumAddsTheAmountPerCopy() public {
        uint64 before = deposit(dev);
        openRedundant(JOB, 30e6, 2);
        eq(jobWord(JOB) >> 250 & 7, 2, "two copies kept with the job");
        commit(JOB, 6e6);
        eq(jobWord(JOB) >> 250 & 7, 2, "kept by the commit");
        vm.prank(verifier);
        market.extendWindow(JOB, 1 hours);
        vm.prank(verifier);
        market.challenge(JOB);
        vm.recordLogs();
        vm.prank(arbiter);
        market.resolve(JOB, false);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        eq(abi.decode(_log(logs, GpuMarket.PremiumPaid.selector).data, (uint256)), 12_600_000,
           "PremiumPaid: 0.6 + 2 x 6");
        eq(_settledRefund(logs), 11_400_000, "Settled's refund: 24 - 12.6");
        eq(market.verificationPool(), 12_600_000, "the premium in the pool");
        eq(deposit(dev), before - 6e6 - 12_600_000, "the developer paid the amount, premium");
    }

    /// Only 3 bits of copies are kept (at most 7), and the premium stays capped by what the
    /// escrow holds beyond the amount: maxPayment 20, amount 6, 9 copies keep 1 (6.6, not
    /// 54.6); 7 copies on maxPayment 20 take the whole 14 left.
    function test_aRedundantPremiumIsBoundedByItsEscrow() public {
        uint64 before = deposit(dev);
        bytes32 nine = keccak256("nine copies");
        openRedundant(nine, 20e6, 9);
        eq(jobWord(nine) >> 250 & 7, 1, "9 kept as 1 (3 bits)");
        commit(nine, 6e6);
        bytes32 seven = keccak256("seven copies");
        openRedundant(seven, 20e6, 7);
        commit(seven, 6e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(nine);
        eq(market.verificationPool(), 6_600_000, "0.6 + 6");
        market.finalize(seven);
        eq(market.verificationPool(), 6_600_000 + 14e6, "capped at the 14 left");
        eq(deposit(dev), before - 12e6 - 6_600_000 - 14e6, "never more than the escrows");
    }

    /// A job keeps the premium of the terms it was opened under.
    function test_aVerifiedJobKeepsItsTermsPremium() public {
        openVerified(JOB, 10e6); // terms 0: 10%
        GpuMarket.Terms memory later = terms(250, 2000, 5000);
        later.premiumBps = 5000;
        vm.prank(admin);
        market.setTerms(later);
        commit(JOB, 6e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(JOB); // reads terms 0's word, not the current one
        eq(market.verificationPool(), 600_000, "terms 0's 10%");
        bytes32 next = keccak256("next");
        openVerified(next, 10e6); // terms 1: 50%, capped by the 4 left
        commit(next, 6e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(next);
        eq(market.verificationPool(), 600_000 + 3e6, "terms 1's 50% of 6");
    }

    // ------------------------------------------------------------ the pool

    function test_fundPoolAddsToThePoolFromAnyone() public {
        address stranger = address(0x57A);
        vm.prank(stranger);
        vm.expectRevert(GpuMarket.ZeroAmount.selector);
        market.fundPool(0);
        vm.prank(stranger); // no tokens approved
        vm.expectRevert();
        market.fundPool(1);
        usd.mint(stranger, 5e6);
        vm.prank(stranger);
        usd.approve(address(market), 5e6);
        uint256 held = usd.balanceOf(address(market));
        vm.recordLogs();
        vm.prank(stranger);
        market.fundPool(5e6);
        Vm.Log memory funded = _log(vm.getRecordedLogs(), GpuMarket.PoolFunded.selector);
        ok(funded.topics[1] == bytes32(uint256(uint160(stranger))), "PoolFunded names the funder");
        eq(abi.decode(funded.data, (uint256)), 5e6, "and the amount");
        eq(market.verificationPool(), 5e6, "in the pool");
        eq(usd.balanceOf(address(market)), held + 5e6, "the tokens moved in");
        eq(usd.balanceOf(stranger), 0, "from the funder");
        eq(market.accountId(stranger), 0, "a funder needs no account");
        vm.prank(admin);
        market.pause(); // funding the pool is not a new job
        _fundPool(1e6);
        eq(market.verificationPool(), 6e6, "while paused too");
    }

    // ------------------------------------------------------------ challenges

    /// A verifier challenges without a bond (and needs no account: it earns nothing); a
    /// developer puts up the terms' bond.
    function test_aVerifierChallengesWithoutABondADeveloperWithIt() public {
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.recordLogs();
        vm.prank(verifier); // holds no tokens and approved nothing
        market.challenge(JOB);
        Vm.Log memory c = _log(vm.getRecordedLogs(), GpuMarket.Challenged.selector);
        ok(c.topics[2] == bytes32(uint256(uint160(verifier))), "Challenged names the verifier");
        eq(abi.decode(c.data, (uint256)), 0, "and no bond");
        (uint32 challenger, uint64 bond) = market.disputes(JOB);
        eq(challenger, 0, "a verifier's challenge: no account");
        eq(bond, 0, "no bond");
        eq(market.accountId(verifier), 0, "none created");

        open(PLAIN, 10e6);
        commit(PLAIN, 6e6);
        uint256 wallet = usd.balanceOf(dev);
        vm.prank(dev);
        market.challenge(PLAIN);
        eq(usd.balanceOf(dev), wallet - BOND, "the developer's bond taken");
        (challenger, bond) = market.disputes(PLAIN);
        eq(challenger, market.accountId(dev), "the developer's account");
        eq(bond, BOND, "its bond held");
    }

    /// At fault after a verifier's challenge: the slash share goes to the pool (which paid
    /// for the runs that proved it), the rest to the treasury; after a developer's, the share
    /// and the bond to the developer, as before.
    function test_theSlashShareGoesToThePoolForAVerifiersChallenge() public {
        uint64 before = deposit(dev);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.prank(verifier);
        market.challenge(JOB);
        vm.prank(arbiter);
        market.resolve(JOB, true);
        eq(market.verificationPool(), MIN_STAKE / 2, "half the slash to the pool");
        eq(market.treasuryBalance(), MIN_STAKE / 2, "the rest to the treasury");
        eq(deposit(dev), before, "the developer's whole escrow back");
        eq(earnings(dev), 0, "the developer did not challenge: no share");
        (uint64 staked,) = stakeOf(prov);
        eq(staked, MIN_STAKE * 2, "slashed");

        open(PLAIN, 10e6);
        commit(PLAIN, 6e6);
        vm.prank(dev);
        market.challenge(PLAIN);
        vm.prank(arbiter);
        market.resolve(PLAIN, true);
        eq(market.verificationPool(), MIN_STAKE / 2, "the pool unchanged");
        eq(earnings(dev), MIN_STAKE / 2 + BOND, "the developer's share and bond");
        eq(market.treasuryBalance(), MIN_STAKE, "the other halves");
    }

    /// A verifier's challenge lost: no bond to pay the provider, the job settles with its
    /// premium.
    function test_aVerifiersLostChallengeSettlesTheJob() public {
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        vm.prank(verifier);
        market.challenge(JOB);
        vm.prank(arbiter);
        market.resolve(JOB, false);
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Settled), "settled");
        eq(earnings(prov), 5_850_000, "paid, no bond");
        eq(market.verificationPool(), 600_000, "the premium");
    }

    // ------------------------------------------------------------ payRerun

    function test_payRerunPaysASignedClaimFromThePool() public {
        _fundPool(20e6);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        GpuMarket.Sig memory sig = signed(RUNNER_KEY, market.resultDigest(JOB, RESULT, 6e6));
        vm.recordLogs();
        vm.prank(verifier);
        market.payRerun(JOB, RESULT, 6e6, sig);
        Vm.Log memory paid = _log(vm.getRecordedLogs(), GpuMarket.RerunPaid.selector);
        ok(paid.topics[1] == JOB, "RerunPaid names the job");
        ok(paid.topics[2] == bytes32(uint256(uint160(runner))), "and the re-runner");
        (bytes32 result, uint256 amount) = abi.decode(paid.data, (bytes32, uint256));
        ok(result == RESULT, "the re-run's result hash: the evidence");
        eq(amount, 6e6, "the amount");
        eq(earnings(runner), 6e6, "the re-runner's earnings");
        eq(market.verificationPool(), 14e6, "out of the pool");
        uint256 wallet = usd.balanceOf(runner);
        vm.prank(runner);
        market.withdrawEarnings();
        eq(usd.balanceOf(runner), wallet + 6e6, "withdrawn");
        eq(uint8(state(JOB)), uint8(GpuMarket.State.Committed), "the job untouched");
        (uint64 runnerStake, uint64 runnerLocked) = stakeOf(runner);
        eq(runnerStake, MIN_STAKE, "the re-runner's stake untouched");
        eq(runnerLocked, 0, "and unlocked");
    }

    /// Once a result was committed, in every state after it: Committed, Disputed, Settled,
    /// Refunded. A plain job's re-run too (the verifier decides what it samples).
    function test_payRerunInEveryStateAfterACommit() public {
        _fundPool(40e6);
        fund(prov, MIN_STAKE, false);
        vm.prank(prov);
        market.stake(MIN_STAKE); // four results at once
        bytes32[4] memory ids =
            [keccak256("committed"), keccak256("disputed"), keccak256("settled"), keccak256("refunded")];
        for (uint256 i = 0; i < 4; ++i) {
            if (i == 1) open(ids[i], 10e6);
            else openVerified(ids[i], 10e6);
            commit(ids[i], 6e6);
        }
        vm.prank(dev);
        market.challenge(ids[1]);
        vm.prank(verifier);
        market.challenge(ids[3]);
        vm.prank(arbiter);
        market.resolve(ids[3], true);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(ids[2]);
        for (uint256 i = 0; i < 4; ++i) _pay(ids[i], RUNNER_KEY, 5e6);
        eq(earnings(runner), 20e6, "four re-runs paid");
    }

    /// Each refusal names why, and moves nothing.
    function test_payRerunRefusals() public {
        _fundPool(7e6);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        GpuMarket.Sig memory sig = signed(RUNNER_KEY, market.resultDigest(JOB, RESULT, 6e6));

        // only a verifier
        bytes32 role = market.VERIFIER_ROLE();
        address[3] memory others = [coordinator, arbiter, runner];
        for (uint256 i = 0; i < 3; ++i) {
            vm.prank(others[i]);
            vm.expectRevert(abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, others[i], role));
            market.payRerun(JOB, RESULT, 6e6, sig);
        }
        // a job whose result was never committed: none, open, cancelled
        bytes32 never = keccak256("never opened");
        GpuMarket.Sig memory neverSig = signed(RUNNER_KEY, market.resultDigest(never, RESULT, 1));
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WrongState.selector, never, GpuMarket.State.None));
        market.payRerun(never, RESULT, 1, neverSig);
        openVerified(never, 10e6);
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.WrongState.selector, never, GpuMarket.State.Open));
        market.payRerun(never, RESULT, 1, neverSig);
        vm.prank(coordinator);
        market.cancel(never);
        vm.prank(verifier);
        vm.expectRevert(
            abi.encodeWithSelector(GpuMarket.WrongState.selector, never, GpuMarket.State.Cancelled)
        );
        market.payRerun(never, RESULT, 1, neverSig);
        // over the job's maxPayment, signed as such
        GpuMarket.Sig memory over = signed(RUNNER_KEY, market.resultDigest(JOB, RESULT, 10e6 + 1));
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.AmountOverMax.selector, 10e6 + 1, 10e6));
        market.payRerun(JOB, RESULT, 10e6 + 1, over);
        // a signer the market does not know
        GpuMarket.Sig memory stranger = signed(0x5EC, market.resultDigest(JOB, RESULT, 6e6));
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.BadSignature.selector, vm.addr(0x5EC)));
        market.payRerun(JOB, RESULT, 6e6, stranger);
        // a claim for another amount than signed recovers someone else
        vm.prank(verifier);
        vm.expectRevert();
        market.payRerun(JOB, RESULT, 5e6, sig);
        // the job's own provider
        GpuMarket.Sig memory own = signed(provKey, market.resultDigest(JOB, RESULT, 6e6));
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.RunnerIsProvider.selector, JOB, prov));
        market.payRerun(JOB, RESULT, 6e6, own);
        eq(market.verificationPool(), 7e6, "nothing moved");
        eq(earnings(runner), 0, "nothing paid");
        // paid once
        vm.prank(verifier);
        market.payRerun(JOB, RESULT, 6e6, sig);
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.AlreadyPaid.selector, JOB, runner));
        market.payRerun(JOB, RESULT, 6e6, sig);
        GpuMarket.Sig memory another = signed(RUNNER_KEY, market.resultDigest(JOB, keccak256("x"), 1));
        vm.prank(verifier); // another claim by the same re-runner for the same job
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.AlreadyPaid.selector, JOB, runner));
        market.payRerun(JOB, keccak256("x"), 1, another);
        // the pool must hold it: 1 left
        address third = vm.addr(0xB4);
        fund(third, 10e6, true);
        GpuMarket.Sig memory thirdSig = signed(0xB4, market.resultDigest(JOB, RESULT, 2e6));
        vm.prank(verifier);
        vm.expectRevert(abi.encodeWithSelector(GpuMarket.InsufficientPool.selector, 1e6, 2e6));
        market.payRerun(JOB, RESULT, 2e6, thirdSig);
        eq(earnings(third), 0, "unpaid");
        _fundPool(1e6);
        vm.prank(verifier);
        market.payRerun(JOB, RESULT, 2e6, thirdSig); // a tie-breaker: another re-runner
        eq(earnings(third), 2e6, "paid once the pool holds it");
        eq(market.verificationPool(), 0, "the pool spent");
    }

    // ------------------------------------------------------------ whole flows

    /// A sampled job caught cheating, end to end: re-runs paid from a seeded pool, the
    /// verifier's challenge, the ruling; then everything that can leave does, and the market
    /// holds exactly its pool.
    function test_everythingButThePoolLeaves() public {
        _fundPool(20e6);
        openVerified(JOB, 10e6);
        commit(JOB, 6e6);
        _pay(JOB, RUNNER_KEY, 6e6); // the re-run disagrees
        address tieBreaker = vm.addr(0xB4);
        fund(tieBreaker, 2e6, true);
        _pay(JOB, 0xB4, 6e6); // so does the tie-break
        vm.prank(verifier);
        market.challenge(JOB);
        vm.prank(arbiter);
        market.resolve(JOB, true);
        openVerified(PLAIN, 10e6); // an honest sampled job
        commit(PLAIN, 6e6);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(PLAIN);
        eq(market.verificationPool(), 20e6 - 12e6 + MIN_STAKE / 2 + 600_000, "the pool");

        address[4] memory everyone = [dev, prov, runner, tieBreaker];
        for (uint256 i = 0; i < 4; ++i) {
            vm.startPrank(everyone[i]);
            uint64 dep = deposit(everyone[i]);
            if (dep > 0) market.withdraw(dep);
            if (earnings(everyone[i]) > 0) market.withdrawEarnings();
            (uint64 staked,) = stakeOf(everyone[i]);
            if (staked > 0) market.requestUnstake(staked);
            vm.stopPrank();
        }
        vm.warp(block.timestamp + 7 days);
        vm.prank(prov);
        market.withdrawStake();
        vm.prank(runner);
        market.withdrawStake();
        market.withdrawTreasury();
        market.burn();
        eq(usd.balanceOf(address(market)), market.verificationPool(), "only the pool is left");
    }

    /// The ERC-5267 domain the contract reports is the one its digests are built in.
    function test_eip712DomainIsTheSigningDomain() public view {
        (bytes1 fields, string memory name, string memory version, uint256 chainId,
            address verifying, bytes32 salt, uint256[] memory extensions) = market.eip712Domain();
        ok(fields == hex"0f", "name, version, chain id, contract");
        ok(keccak256(bytes(name)) == keccak256("gpumarket"), "name");
        ok(keccak256(bytes(version)) == keccak256("1"), "version");
        eq(chainId, block.chainid, "chain id");
        ok(verifying == address(market), "contract");
        ok(salt == bytes32(0) && extensions.length == 0, "no salt, no extensions");
        bytes32 domain = keccak256(abi.encode(
            keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
            keccak256(bytes(name)), keccak256(bytes(version)), chainId, verifying));
        bytes32 structHash = keccak256(abi.encode(
            keccak256("Result(bytes32 jobId,bytes32 resultHash,uint64 amount)"), JOB, RESULT, uint64(6e6)));
        ok(keccak256(abi.encodePacked(hex"1901", domain, structHash))
               == market.resultDigest(JOB, RESULT, 6e6), "the digest's domain");
    }
}
