// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {GpuMarket} from "../src/GpuMarket.sol";
import {TestStablecoin} from "../src/TestStablecoin.sol";

/// @dev The few forge cheatcodes the tests use (npm's forge-std is an unofficial old copy).
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256) external;
    function prank(address) external;
    function startPrank(address) external;
    function stopPrank() external;
    function expectRevert(bytes4) external;
    function expectRevert(bytes calldata) external;
    function expectRevert() external;
    function sign(uint256 privateKey, bytes32 digest) external returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external returns (address);
    function assume(bool) external;
    function chainId(uint256) external;
    function recordLogs() external;
    function load(address target, bytes32 slot) external view returns (bytes32);
    function getRecordedLogs() external returns (Log[] memory);
}

/// @dev A market with a token, roles and funded actors, and small assertion helpers.
contract Base {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    TestStablecoin internal usd;
    GpuMarket internal market;

    address internal admin = address(0xA11CE);
    address internal coordinator = address(0xC00D);
    address internal arbiter = address(0xA7B1);
    address internal verifier = address(0xFE21);
    address internal treasury = address(0x7EA5);
    uint256 internal devKey = 0xD1;
    uint256 internal provKey = 0xB2;
    address internal dev;
    address internal prov;

    uint64 internal constant MIN_STAKE = 100e6;
    uint64 internal constant BOND = 10e6;
    uint32 internal constant WINDOW = 1 hours;
    uint32 internal constant VERIFY_WINDOW = 2 days;
    /// @dev What `scaled()` terms lock per unit of a job's amount (over the MIN_STAKE floor).
    uint8 internal constant MULTIPLE = 20;
    /// @dev The share of a verified job's amount its developer pays into the pool (10%).
    uint16 internal constant PREMIUM = 1000;

    function setUp() public virtual {
        dev = vm.addr(devKey);
        prov = vm.addr(provKey);
        usd = new TestStablecoin();
        market = new GpuMarket(usd, admin, treasury, terms(250, 2000, 5000));
        vm.startPrank(admin);
        market.grantRole(market.COORDINATOR_ROLE(), coordinator);
        market.grantRole(market.ARBITER_ROLE(), arbiter);
        market.grantRole(market.PAUSER_ROLE(), admin);
        market.grantRole(market.VERIFIER_ROLE(), verifier);
        vm.stopPrank();
        fund(dev, 1_000e6, true);
        fund(prov, 1_000e6, false);
        vm.prank(prov);
        market.stake(MIN_STAKE * 3);
    }

    function terms(uint16 fee, uint16 burnShare, uint16 slashShare)
        internal
        pure
        returns (GpuMarket.Terms memory)
    {
        return GpuMarket.Terms({
            feeBps: fee,
            burnBps: burnShare,
            slashShareBps: slashShare,
            window: WINDOW,
            minStake: MIN_STAKE,
            challengeBond: BOND,
            stakeMultiple: 0,
            verifyWindow: VERIFY_WINDOW,
            premiumBps: PREMIUM
        });
    }

    /// @dev Terms whose results lock `max(MIN_STAKE, amount * MULTIPLE)`.
    function scaled(uint16 fee, uint16 burnShare, uint16 slashShare)
        internal
        pure
        returns (GpuMarket.Terms memory t)
    {
        t = terms(fee, burnShare, slashShare);
        t.stakeMultiple = MULTIPLE;
    }

    function fund(address who, uint64 amount, bool depositIt) internal {
        usd.mint(who, amount);
        vm.prank(who);
        usd.approve(address(market), type(uint256).max);
        if (depositIt) {
            vm.prank(who);
            market.deposit(amount / 2);
        }
    }

    function order(bytes32 jobId, uint64 maxPayment) internal view returns (GpuMarket.Order memory) {
        return GpuMarket.Order({
            jobId: jobId,
            specHash: keccak256("spec"),
            maxPayment: maxPayment,
            deadline: uint64(block.timestamp + 1 days),
            nonce: 1
        });
    }

    /// @dev EIP-2098 compact form, as the market takes signatures
    function signed(uint256 key, bytes32 digest) internal returns (GpuMarket.Sig memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return GpuMarket.Sig({r: r, vs: bytes32(uint256(s) | (uint256(v - 27) << 255))});
    }

    function open(bytes32 jobId, uint64 maxPayment) internal {
        GpuMarket.Order memory o = order(jobId, maxPayment);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.prank(coordinator);
        market.openJob(o, sig);
    }

    /// @dev `open`, as a sampled job (`openVerified`): it pays the premium when it settles.
    function openVerified(bytes32 jobId, uint64 maxPayment) internal {
        openRedundant(jobId, maxPayment, 0);
    }

    /// @dev `open`, as a redundant job run `copies` more times: its premium adds the amount
    /// once per copy.
    function openRedundant(bytes32 jobId, uint64 maxPayment, uint8 copies) internal {
        GpuMarket.Order memory o = order(jobId, maxPayment);
        GpuMarket.Sig memory sig = signed(devKey, market.orderDigest(o));
        vm.prank(coordinator);
        (bool ok, bytes memory reason) = address(market).call(
            abi.encodePacked(abi.encodeCall(market.openVerified, (o, sig)), uint256(copies))
        );
        if (!ok) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    /// @dev The job's packed storage word, flags included (`_jobs` is the market's slot 7).
    function jobWord(bytes32 jobId) internal view returns (uint256) {
        return uint256(vm.load(address(market), keccak256(abi.encode(jobId, uint256(7)))));
    }

    function commit(bytes32 jobId, uint64 amount) internal {
        bytes32 result = keccak256(abi.encode(jobId, "outputs"));
        GpuMarket.Sig memory sig = signed(provKey, market.resultDigest(jobId, result, amount));
        vm.prank(coordinator);
        market.commitResult(jobId, result, amount, sig);
    }

    function extend(bytes32 jobId, uint32 extra) internal {
        vm.prank(verifier);
        market.extendWindow(jobId, extra);
    }

    function windowEndOf(bytes32 jobId) internal view returns (uint32 end) {
        (,,,, end,,) = market.jobs(jobId);
    }

    /// @dev What a result of `amount` locks: max(floor, amount * multiple), as the contract.
    function lockFor(uint256 amount, uint256 floor, uint256 multiple) internal pure returns (uint256) {
        return amount * multiple > floor ? amount * multiple : floor;
    }

    function deposit(address who) internal view returns (uint64 d) {
        (d,,,) = market.balances(market.accountId(who));
    }

    function earnings(address who) internal view returns (uint64 e) {
        (, e,,) = market.balances(market.accountId(who));
    }

    function stakeOf(address who) internal view returns (uint64 s, uint64 locked) {
        (,, s, locked) = market.balances(market.accountId(who));
    }

    function state(bytes32 jobId) internal view returns (GpuMarket.State s) {
        (,,,,,, s) = market.jobs(jobId);
    }

    function eq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", _str(a), " != ", _str(b)));
    }

    function ok(bool condition, string memory what) internal pure {
        if (!condition) revert(what);
    }

    function _str(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        bytes memory digits;
        while (value > 0) {
            digits = abi.encodePacked(bytes1(uint8(48 + value % 10)), digits);
            value /= 10;
        }
        return string(digits);
    }
}
