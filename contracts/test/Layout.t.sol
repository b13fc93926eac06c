// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GpuMarket} from "../src/GpuMarket.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Base} from "./Base.sol";

/// @notice What the gas-saving storage layout must not change: refunds and unlocked stake
/// credited by id are part of the deposit and the free stake the moment they are credited (an
/// open, a commit, a withdrawal or an unstake that needs them folds them in); the primary
/// coordinator kept in the config word loses its access with its role; a later terms change
/// never touches a running job; the cached terms fields keep their width.
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

    function test_termsOutsideTheCachedWidthsAreRefused() public {
        GpuMarket.Terms memory t = terms(250, 0, 0);
        t.minStake = uint64(1 << 48);
        vm.prank(admin);
        vm.expectRevert(GpuMarket.BadTerms.selector);
        market.setTerms(t);
        t.minStake = uint64((1 << 48) - 1);
        vm.prank(admin);
        market.setTerms(t);
        eq(market.currentTerms().minStake, (1 << 48) - 1, "the largest that fits");
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
