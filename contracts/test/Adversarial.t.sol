// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {GpuMarket} from "../src/GpuMarket.sol";
import {Base} from "./Base.sol";

/// @dev A token that calls back into the market from inside a transfer.
contract ReentrantToken is ERC20 {
    GpuMarket public target;

    constructor() ERC20("evil", "EVL") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(GpuMarket market) external {
        target = market;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (address(target) != address(0) && from == address(target)) {
            GpuMarket market = target;
            target = GpuMarket(address(0));
            market.withdraw(1); // re-enter while the market is paying out
        }
    }
}

/// @dev A token whose transfers to one address always fail (a blacklisting stablecoin).
contract BlockingToken is ERC20 {
    address public blocked;

    constructor() ERC20("blocky", "BLK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function block_(address who) external {
        blocked = who;
    }

    function _update(address from, address to, uint256 value) internal override {
        require(to != blocked, "recipient blocked");
        super._update(from, to, value);
    }
}

contract AdversarialTest is Base {
    function test_reentrantTokenCannotReenter() public {
        ReentrantToken evil = new ReentrantToken();
        GpuMarket m = new GpuMarket(IERC20(address(evil)), admin, treasury, terms(250, 0, 0));
        evil.mint(dev, 10e6);
        vm.startPrank(dev);
        evil.approve(address(m), type(uint256).max);
        m.deposit(10e6);
        vm.stopPrank();
        evil.arm(m);
        vm.prank(dev);
        vm.expectRevert(); // ReentrancyGuardReentrantCall from the nested withdraw
        m.withdraw(5e6);
        eq(evil.balanceOf(address(m)), 10e6, "nothing left the contract");
    }

    function test_blockedRecipientDoesNotStopOthers() public {
        BlockingToken blocky = new BlockingToken();
        GpuMarket m = new GpuMarket(IERC20(address(blocky)), admin, treasury, terms(250, 0, 0));
        vm.startPrank(admin);
        m.grantRole(m.COORDINATOR_ROLE(), coordinator);
        vm.stopPrank();
        uint256 otherKey = 0xB3;
        address other = vm.addr(otherKey);
        address[3] memory people = [dev, prov, other];
        for (uint256 i = 0; i < 3; ++i) {
            blocky.mint(people[i], 1_000e6);
            vm.startPrank(people[i]);
            blocky.approve(address(m), type(uint256).max);
            if (i == 0) m.deposit(100e6);
            else m.stake(MIN_STAKE);
            vm.stopPrank();
        }
        bytes32[2] memory ids = [keccak256("a"), keccak256("b")];
        uint256[2] memory keys = [provKey, otherKey];
        for (uint256 i = 0; i < 2; ++i) {
            GpuMarket.Order memory o = order(ids[i], 10e6);
            GpuMarket.Sig memory sig = signed(devKey, m.orderDigest(o));
            vm.prank(coordinator);
            m.openJob(o, sig);
            bytes32 result = keccak256("r");
            GpuMarket.Sig memory psig = signed(keys[i], m.resultDigest(ids[i], result, 10e6));
            vm.prank(coordinator);
            m.commitResult(ids[i], result, 10e6, psig);
        }
        blocky.block_(prov);
        vm.warp(block.timestamp + WINDOW);
        bytes32[] memory both = new bytes32[](2);
        both[0] = ids[0];
        both[1] = ids[1];
        eq(m.finalizeMany(both), 2, "both settle: nothing is pushed to anyone");
        vm.prank(prov);
        vm.expectRevert();
        m.withdrawEarnings(); // the blocked provider cannot take its money out ...
        uint256 wallet = blocky.balanceOf(other);
        vm.prank(other);
        m.withdrawEarnings(); // ... and that stops nobody else
        eq(blocky.balanceOf(other), wallet + 10e6 - 250_000, "the other provider is paid");
    }

    function test_anyoneFinalizingGivesTheSameBalances() public {
        GpuMarket second = new GpuMarket(usd, admin, treasury, terms(250, 2000, 5000));
        vm.startPrank(admin);
        second.grantRole(second.COORDINATOR_ROLE(), coordinator);
        vm.stopPrank();
        vm.startPrank(dev);
        usd.approve(address(second), type(uint256).max);
        second.deposit(100e6);
        vm.stopPrank();
        vm.startPrank(prov);
        usd.approve(address(second), type(uint256).max);
        second.stake(MIN_STAKE);
        vm.stopPrank();
        bytes32 id = keccak256("same");
        open(id, 10e6);
        commit(id, 7e6);
        GpuMarket.Order memory o = order(id, 10e6);
        GpuMarket.Sig memory sig = signed(devKey, second.orderDigest(o));
        vm.prank(coordinator);
        second.openJob(o, sig);
        bytes32 result = keccak256(abi.encode(id, "outputs"));
        GpuMarket.Sig memory psig = signed(provKey, second.resultDigest(id, result, 7e6));
        vm.prank(coordinator);
        second.commitResult(id, result, 7e6, psig);
        vm.warp(block.timestamp + WINDOW);
        vm.prank(coordinator);
        market.finalize(id);
        vm.prank(address(0x5757)); // a stranger
        second.finalize(id);
        (, uint64 e1,,) = market.balances(market.accountId(prov));
        (, uint64 e2,,) = second.balances(second.accountId(prov));
        eq(e1, e2, "provider");
        eq(market.treasuryBalance(), second.treasuryBalance(), "treasury");
        eq(market.burnBalance(), second.burnBalance(), "burn");
        (uint64 d1,,,) = market.balances(market.accountId(dev));
        (uint64 d2,,,) = second.balances(second.accountId(dev));
        eq(uint256(d1) + 100e6, uint256(d2) + 500e6, "developer refund alike");
    }

    function test_settlingAndWithdrawingEverythingLeavesItEmpty() public {
        bytes32[3] memory ids = [keccak256("x"), keccak256("y"), keccak256("z")];
        for (uint256 i = 0; i < 3; ++i) open(ids[i], 20e6);
        commit(ids[0], 20e6);
        commit(ids[1], 5e6);
        vm.prank(dev);
        market.challenge(ids[1]);
        vm.prank(arbiter);
        market.resolve(ids[1], true);
        vm.prank(coordinator);
        market.cancel(ids[2]);
        vm.warp(block.timestamp + WINDOW);
        market.finalize(ids[0]);

        vm.startPrank(dev);
        market.withdraw(deposit(dev));
        market.withdrawEarnings();
        vm.stopPrank();
        (uint64 staked,) = stakeOf(prov);
        vm.startPrank(prov);
        market.withdrawEarnings();
        market.requestUnstake(staked);
        vm.stopPrank();
        vm.warp(block.timestamp + 7 days);
        vm.prank(prov);
        market.withdrawStake();
        market.withdrawTreasury();
        market.burn();
        eq(usd.balanceOf(address(market)), 0, "empty");
    }

    /// The same with scaled stakes: a lost challenge slashes 20 x the amount, the rest of the
    /// locks come back, and every token leaves.
    function test_scaledStakesSettleAndLeaveItEmpty() public {
        vm.prank(admin);
        market.setTerms(scaled(250, 2000, 5000));
        bytes32[3] memory ids = [keccak256("x"), keccak256("y"), keccak256("z")];
        for (uint256 i = 0; i < 3; ++i) open(ids[i], 10e6);
        commit(ids[0], 10e6); // locks 200
        commit(ids[1], 2e6); // locks the floor, 100
        vm.prank(dev);
        market.challenge(ids[0]);
        vm.prank(arbiter);
        market.resolve(ids[0], true); // 200 slashed
        vm.warp(block.timestamp + WINDOW);
        market.finalize(ids[1]);
        vm.prank(coordinator);
        market.cancel(ids[2]);
        (uint64 staked, uint64 locked) = stakeOf(prov);
        eq(staked, MIN_STAKE * 3 - 200e6, "the scaled stake slashed");
        eq(locked, 0, "every lock released");
        vm.startPrank(dev);
        market.withdraw(deposit(dev));
        market.withdrawEarnings();
        vm.stopPrank();
        vm.startPrank(prov);
        market.withdrawEarnings();
        market.requestUnstake(staked);
        vm.stopPrank();
        vm.warp(block.timestamp + 7 days);
        vm.prank(prov);
        market.withdrawStake();
        market.withdrawTreasury();
        market.burn();
        eq(usd.balanceOf(address(market)), 0, "empty");
    }

    /// A window an extension would carry past 2106 ends at the largest time the job's 32 bits
    /// hold: cut to 32 bits it would wrap to 1970, and anyone could finalize at once, before
    /// the verifier's re-run could challenge.
    function test_anExtensionPast2106IsClampedNotTruncated() public {
        vm.warp(type(uint32).max - 2 hours);
        bytes32 id = keccak256("far");
        open(id, 10e6);
        commit(id, 5e6); // the window ends an hour before the largest 32-bit time
        extend(id, 1 days);
        eq(windowEndOf(id), type(uint32).max, "clamped");
        vm.expectRevert(
            abi.encodeWithSelector(GpuMarket.WindowOpen.selector, type(uint32).max, block.timestamp)
        );
        market.finalize(id);
        vm.prank(dev);
        market.challenge(id); // still inside the window
        eq(uint8(state(id)), uint8(GpuMarket.State.Disputed), "challenged");
    }
}
