// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GpuMarket} from "../src/GpuMarket.sol";
import {TestStablecoin} from "../src/TestStablecoin.sol";
import {Base, Vm} from "./Base.sol";

/// @dev Random actions by several developers and providers; forge calls these in random order.
contract Handler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    GpuMarket internal market;
    TestStablecoin internal usd;
    address internal coordinator;
    address internal arbiter;
    address internal verifier;
    address internal admin;
    uint256[3] internal devKeys = [uint256(0xD1), 0xD2, 0xD3];
    // 0xD1 is a developer and a provider: batches must keep one account's balances whole
    uint256[3] internal provKeys = [uint256(0xB1), 0xB2, 0xD1];
    bytes32[] public jobIds;
    mapping(bytes32 => uint256) public payouts;
    mapping(bytes32 => GpuMarket.State) public terminal;
    /// @dev Re-runs paid, by keccak256(job, provider index).
    mapping(bytes32 => uint256) public reruns;
    uint256 public nonce;

    constructor(
        GpuMarket market_,
        TestStablecoin usd_,
        address coordinator_,
        address arbiter_,
        address verifier_,
        address admin_
    ) {
        market = market_;
        usd = usd_;
        coordinator = coordinator_;
        arbiter = arbiter_;
        verifier = verifier_;
        admin = admin_;
        for (uint256 i = 0; i < 3; ++i) {
            _onboard(vm.addr(devKeys[i]), 1_000e6, false);
            _onboard(vm.addr(provKeys[i]), 1_000e6, true);
        }
    }

    function _onboard(address who, uint64 amount, bool provider) internal {
        usd.mint(who, amount);
        vm.prank(who);
        usd.approve(address(market), type(uint256).max);
        vm.prank(who);
        if (provider) market.stake(amount / 2);
        else market.deposit(amount / 2);
    }

    function jobCount() external view returns (uint256) {
        return jobIds.length;
    }

    function open(uint256 who, uint64 maxPayment) external {
        _open(who, maxPayment, false, 0);
    }

    /// @dev A sampled job (no copies) or a redundant one (any `copies`; the market keeps 3
    /// bits of it): it pays the premium into the pool when it settles.
    function openVerified(uint256 who, uint64 maxPayment, uint8 copies) external {
        _open(who, maxPayment, true, copies);
    }

    function _open(uint256 who, uint64 maxPayment, bool verified, uint8 copies) internal {
        uint256 key = devKeys[who % 3];
        maxPayment = uint64(maxPayment % 50e6);
        bytes32 id = keccak256(abi.encode("job", nonce++));
        GpuMarket.Order memory o = GpuMarket.Order(id, keccak256("s"), maxPayment,
                                                    uint64(block.timestamp + 1 days), 1);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.orderDigest(o));
        GpuMarket.Sig memory sig = GpuMarket.Sig(r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
        vm.prank(coordinator);
        if (verified) {
            (bool ok,) = address(market).call(
                abi.encodePacked(abi.encodeCall(market.openVerified, (o, sig)), uint256(copies))
            );
            if (ok) jobIds.push(id);
        } else {
            try market.openJob(o, sig) {
                jobIds.push(id);
            } catch {}
        }
    }

    /// @dev Anyone tops the verification pool up.
    function fundPool(uint256 who, uint64 amount) external {
        address funder = vm.addr(who % 2 == 0 ? devKeys[who % 3] : provKeys[who % 3]);
        amount = uint64(amount % 20e6);
        usd.mint(funder, amount);
        vm.prank(funder);
        try market.fundPool(amount) {} catch {}
    }

    /// @dev A verifier pays a random provider's signed re-run of a random job from the pool
    /// (refused when the job has no result, the signer is its provider, it was paid already or
    /// the pool is short).
    function payRerun(uint256 index, uint256 who, uint64 amount) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        (,, uint64 maxPayment,,,,) = market.jobs(id);
        amount = maxPayment == 0 ? 0 : uint64(amount % (maxPayment + 1));
        bytes32 result = keccak256(abi.encode(id, "re-run"));
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(provKeys[who % 3], market.resultDigest(id, result, amount));
        vm.prank(verifier);
        try market.payRerun(
            id, result, amount, GpuMarket.Sig(r, bytes32(uint256(s) | (uint256(v - 27) << 255)))
        ) {
            reruns[keccak256(abi.encode(id, who % 3))] += 1;
        } catch {}
    }

    /// @dev A verifier's challenge: no bond, the slash share to the pool.
    function verifierChallenge(uint256 index) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        vm.prank(verifier);
        try market.challenge(id) {} catch {}
    }

    function commit(uint256 index, uint256 who, uint64 amount) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        (,, uint64 maxPayment,,,,) = market.jobs(id);
        amount = maxPayment == 0 ? 0 : uint64(amount % (maxPayment + 1));
        bytes32 result = keccak256(abi.encode(id));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(provKeys[who % 3], market.resultDigest(id, result, amount));
        vm.prank(coordinator);
        try market.commitResult(
            id, result, amount, GpuMarket.Sig(r, bytes32(uint256(s) | (uint256(v - 27) << 255)))
        ) {} catch {}
    }

    function challenge(uint256 index) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        (uint32 dev,,,,,,) = market.jobs(id);
        vm.prank(market.accounts(dev));
        try market.challenge(id) {} catch {}
    }

    function resolve(uint256 index, bool atFault) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        vm.prank(arbiter);
        try market.resolve(id, atFault) {
            payouts[id] += 1;
        } catch {}
        _record(id);
    }

    /// @dev Several orders from random developers in one openMany (all or none).
    function openBatch(uint256 seed, uint8 count) external {
        count = count % 5 + 1;
        GpuMarket.Order[] memory orders = new GpuMarket.Order[](count);
        GpuMarket.Sig[] memory sigs = new GpuMarket.Sig[](count);
        for (uint256 i = 0; i < count; ++i) {
            bytes32 id = keccak256(abi.encode("job", nonce++));
            orders[i] = GpuMarket.Order(id, keccak256("s"), uint64((seed >> (i * 8)) % 20e6),
                                        uint64(block.timestamp + 1 days), 1);
            uint256 key = devKeys[(seed >> (i * 16 + 100)) % 3];
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, market.orderDigest(orders[i]));
            sigs[i] = GpuMarket.Sig(r, bytes32(uint256(s) | (uint256(v - 27) << 255)));
        }
        vm.prank(coordinator);
        try market.openMany(orders, sigs) {
            for (uint256 i = 0; i < count; ++i) jobIds.push(orders[i].jobId);
        } catch {}
    }

    /// @dev finalizeMany over a run of jobs, ready or not (those not ready are skipped).
    function finalizeBatch(uint256 start, uint8 count) external {
        if (jobIds.length == 0) return;
        count = count % 8 + 1;
        bytes32[] memory ids = new bytes32[](count);
        GpuMarket.State[] memory before = new GpuMarket.State[](count);
        for (uint256 i = 0; i < count; ++i) {
            ids[i] = jobIds[(start % jobIds.length + i) % jobIds.length];
            (,,,,,, before[i]) = market.jobs(ids[i]);
        }
        try market.finalizeMany(ids) {
            for (uint256 i = 0; i < count; ++i) {
                bool repeat = false; // a short list wraps: count each job once
                for (uint256 k = 0; k < i; ++k) repeat = repeat || ids[k] == ids[i];
                (,,,,,, GpuMarket.State now_) = market.jobs(ids[i]);
                if (before[i] != now_ && !repeat) payouts[ids[i]] += 1;
                _record(ids[i]);
            }
        } catch {}
    }

    function finalize(uint256 index) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        try market.finalize(id) {
            payouts[id] += 1;
        } catch {}
        _record(id);
    }

    function cancel(uint256 index) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        vm.prank(coordinator);
        try market.cancel(id) {
            payouts[id] += 1;
        } catch {}
        _record(id);
    }

    /// @dev A verifier extends a random job's window (sometimes by more than allowed).
    function extend(uint256 index, uint32 extra) external {
        if (jobIds.length == 0) return;
        bytes32 id = jobIds[index % jobIds.length];
        vm.prank(verifier);
        try market.extendWindow(id, extra % 3 days) {} catch {}
    }

    /// @dev New terms: another floor and multiple for jobs opened from now on (the running
    /// ones keep theirs).
    function retune(uint8 multiple, uint64 floor, uint16 premium) external {
        GpuMarket.Terms memory t = market.currentTerms();
        t.stakeMultiple = multiple % 30;
        t.minStake = floor % 200e6;
        t.premiumBps = premium % 10_001;
        vm.prank(admin);
        market.setTerms(t);
    }

    function warp(uint32 seconds_) external {
        vm.warp(block.timestamp + seconds_ % 2 hours);
    }

    function withdrawAll(uint256 who) external {
        address account = vm.addr(who % 2 == 0 ? devKeys[who % 3] : provKeys[who % 3]);
        (uint64 dep, uint64 earned,,) = market.balances(market.accountId(account));
        vm.startPrank(account);
        if (dep > 0) market.withdraw(dep);
        if (earned > 0) market.withdrawEarnings();
        vm.stopPrank();
    }

    function _record(bytes32 id) internal {
        (,,,,,, GpuMarket.State s) = market.jobs(id);
        if (uint8(s) >= uint8(GpuMarket.State.Settled) && terminal[id] == GpuMarket.State.None) {
            terminal[id] = s;
        }
    }
}

contract GpuMarketInvariants is Base {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        market.setTerms(scaled(250, 2000, 5000));
        handler = new Handler(market, usd, coordinator, arbiter, verifier, admin);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// The token balance is exactly what the contract owes (the verification pool included).
    function invariant_balanceEqualsWhatIsOwed() public view {
        eq(usd.balanceOf(address(market)), owed(), "token balance != owed");
    }

    /// Every job pays out at most once, and a terminal state never changes.
    function invariant_payOnceAndTerminalStatesStay() public view {
        for (uint256 i = 0; i < handler.jobCount(); ++i) {
            bytes32 id = handler.jobIds(i);
            ok(handler.payouts(id) <= 1, "paid twice");
            GpuMarket.State recorded = handler.terminal(id);
            if (recorded != GpuMarket.State.None) ok(state(id) == recorded, "terminal changed");
        }
    }

    /// A re-runner is paid at most once per job, and never the job's own provider.
    function invariant_eachReRunIsPaidOnceNeverToTheProvider() public {
        uint256[3] memory provKeys = [uint256(0xB1), 0xB2, 0xD1];
        for (uint256 i = 0; i < handler.jobCount(); ++i) {
            bytes32 id = handler.jobIds(i);
            (, uint32 provider,,,,,) = market.jobs(id);
            for (uint256 k = 0; k < 3; ++k) {
                uint256 paid = handler.reruns(keccak256(abi.encode(id, k)));
                ok(paid <= 1, "a re-run paid twice");
                if (paid > 0) ok(market.accountId(vm.addr(provKeys[k])) != provider, "paid the provider");
            }
        }
    }

    /// Each account's locked stake is exactly what its live results (committed or disputed)
    /// lock under their own terms: max(minStake, amount x stakeMultiple), released once.
    function invariant_lockedStakeIsWhatLiveResultsLock() public view {
        for (uint32 id = 1; id <= market.accountCount(); ++id) {
            (,,, uint64 locked) = market.balances(id);
            eq(locked, liveLocks(id), "locked stake != what live results lock");
        }
    }

    function liveLocks(uint32 account) internal view returns (uint256 total) {
        for (uint256 i = 0; i < handler.jobCount(); ++i) {
            (, uint32 provider,, uint64 amount,, uint16 index, GpuMarket.State s) =
                market.jobs(handler.jobIds(i));
            if (provider != account) continue;
            if (s != GpuMarket.State.Committed && s != GpuMarket.State.Disputed) continue;
            (,,,, uint64 floor,, uint8 multiple,,) = market.terms(index);
            total += lockFor(amount, floor, multiple);
        }
    }

    function owed() internal view returns (uint256 total) {
        for (uint32 id = 1; id <= market.accountCount(); ++id) {
            (uint64 dep, uint64 earned, uint64 staked,) = market.balances(id);
            (uint64 unstaking,) = market.unstaking(id);
            total += uint256(dep) + earned + staked + unstaking;
        }
        for (uint256 i = 0; i < handler.jobCount(); ++i) {
            bytes32 jobId = handler.jobIds(i);
            (,, uint64 maxPayment,,,, GpuMarket.State s) = market.jobs(jobId);
            if (s == GpuMarket.State.Open || s == GpuMarket.State.Committed || s == GpuMarket.State.Disputed) {
                total += maxPayment;
            }
            (, uint64 bond) = market.disputes(jobId);
            total += bond;
        }
        total += uint256(market.treasuryBalance()) + market.burnBalance();
        total += market.verificationPool();
    }
}
